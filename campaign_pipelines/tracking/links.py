"""The links of a template that are tracked: static http(s) hrefs, numbered in order."""

from __future__ import annotations

import re

# A static href: a literal http(s) URL with no template expression inside.
STATIC_HREF = re.compile(r"""(?P<attr>\bhref\s*=\s*)(?P<quote>["'])(?P<url>https?://[^"'{}<>\s]+)(?P=quote)""", re.I)


def template_links(html: str) -> list[str]:
    """Distinct static link URLs of a template, in order of appearance."""
    seen: dict[str, None] = {}
    for match in STATIC_HREF.finditer(html):
        seen.setdefault(match["url"], None)
    return list(seen)
