"""Per-recipient rendering: sandboxed, escaped, never failing on a missing variable."""

from __future__ import annotations

import jinja2
import pytest

from campaign_pipelines.rendering import MessageRenderer, Tracking, html_to_text
from campaign_pipelines.tracking.links import template_links
from campaign_pipelines.tracking.tokens import make_token


def test_contact_attributes_personalise_subject_html_and_text() -> None:
    renderer = MessageRenderer(
        "{{ first_name }}, -70% !", '<h1>Bonjour {{ first_name }}</h1><p><a href="https://x.example/bf">Offres</a></p>'
    )
    subject, html, text, headers = renderer.render("jean@example.com", {"first_name": "Jean"})
    assert subject == "Jean, -70% !"
    assert html == '<h1>Bonjour Jean</h1><p><a href="https://x.example/bf">Offres</a></p>'
    assert text == "Bonjour Jean\n\nOffres (https://x.example/bf)\n"
    assert headers == {}  # no tracking configured


def test_html_in_contact_data_is_escaped_and_subjects_stay_on_one_line() -> None:
    renderer = MessageRenderer("Hi {{ first_name }}", "<p>{{ first_name }}</p>")
    subject, html, _, _ = renderer.render("a@example.com", {"first_name": "<script>alert(1)</script>\nBcc: x@evil"})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "\n" not in subject


def test_the_text_part_holds_contact_data_as_written() -> None:
    renderer = MessageRenderer("s", "<p>Bonjour {{ first_name }}</p>{% if vip %}<p>VIP</p>{% endif %}")
    _, html, text, _ = renderer.render("a@example.com", {"first_name": "Tom & Jerry <3", "vip": True})
    assert "Tom &amp; Jerry &lt;3" in html
    assert text == "Bonjour Tom & Jerry <3\nVIP\n"


def test_runs_of_blank_lines_in_the_text_part_become_one() -> None:
    renderer = MessageRenderer("s", "<p>{{ note }}</p><p>Fin</p>")
    assert renderer.render("a@example.com", {"note": "a\n\n\n\nb"})[2] == "a\n\nb\n\nFin\n"
    assert renderer.render("a@example.com", {"note": "a\nb"})[2] == "a\nb\n\nFin\n"


def test_missing_variables_render_empty_and_are_counted() -> None:
    renderer = MessageRenderer("Hello {{ nickname }}", "<p>{{ city }} {{ first_name | default('ami') }}</p>")
    subject, html, _, _ = renderer.render("a@example.com", {})
    assert (subject, html) == ("Hello", "<p> ami</p>")
    assert renderer.undefined_variables == 2


def test_template_code_cannot_reach_python_internals() -> None:
    renderer = MessageRenderer("s", "{{ email.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        renderer.render("a@example.com", {})


@pytest.mark.parametrize(
    "html", ["{{ email.__class__ }}", "{{ cycler.__init__.__globals__ }}", "{{ lipsum.__globals__['os'] }}"]
)
def test_a_forbidden_attribute_raises_rather_than_rendering_empty(html: str) -> None:
    with pytest.raises(jinja2.exceptions.SecurityError, match="unsafe"):
        MessageRenderer("s", html).render("a@example.com", {})


def test_a_value_repeated_past_the_limit_raises_before_it_is_built() -> None:
    renderer = MessageRenderer("s", "{{ 'a' * n }}")
    assert "a" * 1000 in renderer.render("a@example.com", {"n": 1000})[1]
    with pytest.raises(jinja2.exceptions.SecurityError, match="more than 1,000,000 items"):
        renderer.render("a@example.com", {"n": 10**9})


def test_scripts_and_styles_are_left_out_of_the_text_part() -> None:
    assert html_to_text("<style>p{}</style><p>Un</p><script>x()</script><p>Deux</p>") == "Un\n\nDeux\n"


TRACKING = Tracking(
    base_url="https://t.example.com/",
    secret=b"s3cret",
    unsubscribe_mailto="unsub@mondomaine.com",
    feedback_sender_id="promo",
)
TEMPLATE = (
    "<html><body><p>Bonjour {{ first_name }}</p>"
    "<a href=\"https://shop.example.com/bf?utm=mail\">Offres</a> <a href='https://shop.example.com/vip'>VIP</a>"
    '<a href="{{ profile_url }}">Profil</a> <a href="mailto:aide@mondomaine.com">Aide</a></body></html>'
)


def test_tracking_rewrites_static_links_adds_pixel_footer_and_headers() -> None:
    links = template_links(TEMPLATE)
    assert links == ["https://shop.example.com/bf?utm=mail", "https://shop.example.com/vip"]
    renderer = MessageRenderer("Offres", TEMPLATE, tracking=TRACKING, campaign_id=7, line_id=3, links=links)

    _, html, text, headers = renderer.render(
        "a@example.com", {"first_name": "Ana", "profile_url": "https://p.example/a"}, 42
    )

    token = make_token(b"s3cret", 7, 42)
    assert f'href="https://t.example.com/c/{token}/0"' in html
    assert f"href='https://t.example.com/c/{token}/1'" in html
    assert 'href="https://p.example/a"' in html and 'href="mailto:aide@mondomaine.com"' in html  # not tracked
    assert html.index(f"https://t.example.com/o/{token}.gif") < html.index("</body>")
    assert f'href="https://t.example.com/u/{token}"' in html
    assert headers == {
        "List-Unsubscribe": (
            f"<https://t.example.com/u/{token}>, <mailto:unsub@mondomaine.com?subject=unsubscribe-{token}>"
        ),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Feedback-ID": "7:3:campaigns:promo",
    }
    assert f"https://t.example.com/u/{token}" in text


def test_the_template_places_the_unsubscribe_link_itself_when_it_wants() -> None:
    template = '<p>Hi</p><p><a href="{{ unsubscribe_url }}">stop</a></p>'
    renderer = MessageRenderer("s", template, tracking=TRACKING, campaign_id=1, links=[])
    _, html, _, _ = renderer.render("a@example.com", {}, 5)
    assert html.count("/u/") == 1 and "Se désinscrire" not in html


def test_contact_data_cannot_override_tracking_urls() -> None:
    renderer = MessageRenderer("s", TEMPLATE, tracking=TRACKING, campaign_id=1, links=template_links(TEMPLATE))
    _, html, _, _ = renderer.render(
        "a@example.com", {"unsubscribe_url": "https://evil.example", "tracking_click_base": "x"}, 5
    )
    assert "evil.example" not in html
