"""Per-recipient rendering: sandboxed, escaped, never failing on a missing variable."""

from __future__ import annotations

import jinja2
import pytest

from campaign_pipelines.rendering import MessageRenderer, html_to_text


def test_contact_attributes_personalise_subject_html_and_text() -> None:
    renderer = MessageRenderer(
        "{{ first_name }}, -70% !", '<h1>Bonjour {{ first_name }}</h1><p><a href="https://x.example/bf">Offres</a></p>'
    )
    subject, html, text = renderer.render("jean@example.com", {"first_name": "Jean"})
    assert subject == "Jean, -70% !"
    assert html == '<h1>Bonjour Jean</h1><p><a href="https://x.example/bf">Offres</a></p>'
    assert text == "Bonjour Jean\n\nOffres (https://x.example/bf)\n"


def test_html_in_contact_data_is_escaped_and_subjects_stay_on_one_line() -> None:
    renderer = MessageRenderer("Hi {{ first_name }}", "<p>{{ first_name }}</p>")
    subject, html, _ = renderer.render("a@example.com", {"first_name": "<script>alert(1)</script>\nBcc: x@evil"})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "\n" not in subject


def test_missing_variables_render_empty_and_are_counted() -> None:
    renderer = MessageRenderer("Hello {{ nickname }}", "<p>{{ city }} {{ first_name | default('ami') }}</p>")
    subject, html, _ = renderer.render("a@example.com", {})
    assert (subject, html) == ("Hello", "<p> ami</p>")
    assert renderer.undefined_variables == 2


def test_template_code_cannot_reach_python_internals() -> None:
    renderer = MessageRenderer("s", "{{ email.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        renderer.render("a@example.com", {})


def test_scripts_and_styles_are_left_out_of_the_text_part() -> None:
    assert html_to_text("<style>p{}</style><p>Un</p><script>x()</script><p>Deux</p>") == "Un\n\nDeux\n"
