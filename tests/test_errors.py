"""The errors a user sees: every problem listed at once, and the names they may have meant."""

from __future__ import annotations

from campaign_pipelines.errors import NotFoundError, ValidationError, existing_names, unknown


def test_a_validation_error_lists_every_problem_under_what_was_refused() -> None:
    error = ValidationError("campaign 7", ["name is empty", "template 'x' does not exist"])

    assert str(error) == "campaign 7: 2 problem(s)\n  - name is empty\n  - template 'x' does not exist"
    assert (error.what, error.problems) == ("campaign 7", ["name is empty", "template 'x' does not exist"])
    assert isinstance(error, ValueError) and issubclass(NotFoundError, LookupError)


def test_an_unknown_name_comes_with_the_existing_ones() -> None:
    assert unknown("server", "Mailjet", ["Brevo", "SendGrid"]) == (
        "server 'Mailjet' does not exist; existing servers: 'Brevo', 'SendGrid'"
    )
    assert unknown("template", "promo", []) == "template 'promo' does not exist; no template exists yet"


def test_a_long_list_of_names_is_cut_and_says_how_many_more() -> None:
    names = [f"t{i}" for i in range(25)]

    assert existing_names("template", names, shown=3) == "existing templates: 't0', 't1', 't2' and 22 more"
    assert existing_names("template", names[:3], shown=3) == "existing templates: 't0', 't1', 't2'"


def test_the_names_may_be_the_active_ones() -> None:
    assert existing_names("server", ["Brevo"], adjective="active") == "active servers: 'Brevo'"
    assert existing_names("server", [], adjective="active") == "no server is active"
