"""The tracked links of a template: its static http(s) hrefs, each once, in order."""

from __future__ import annotations

from campaign_pipelines.tracking.links import template_links


def test_static_links_are_listed_once_in_order_of_appearance() -> None:
    html = (
        "<a href=\"https://shop.example.com/bf\">a</a> <A HREF='http://shop.example.com/vip?x=1&amp;y=2'>b</A>"
        ' <a href = "https://shop.example.com/bf">again</a>'
    )

    assert template_links(html) == ["https://shop.example.com/bf", "http://shop.example.com/vip?x=1&amp;y=2"]


def test_links_built_by_the_template_or_not_on_the_web_are_not_tracked() -> None:
    html = (
        '<a href="{{ profile_url }}">p</a> <a href="https://x.example/{{ id }}">q</a>'
        ' <a href="mailto:aide@mondomaine.com">m</a> <a href="/relative">r</a> <img src="https://x.example/i.png">'
    )

    assert template_links(html) == []
