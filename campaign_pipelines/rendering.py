"""Each recipient's message rendered from the campaign's template snapshot.

A sandboxed Jinja2 with autoescape: contact attributes are data, never code or markup. An
undefined variable renders empty and is counted, so a typo in a template never stops a send.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import jinja2
from jinja2.sandbox import SandboxedEnvironment


class _Counter:
    def __init__(self) -> None:
        self.count = 0


def _undefined_class(counter: _Counter) -> type[jinja2.Undefined]:
    class CountingUndefined(jinja2.ChainableUndefined):
        def __str__(self) -> str:
            counter.count += 1
            return ""

    return CountingUndefined


class MessageRenderer:
    """Compiles a campaign's subject and HTML once; renders them per contact."""

    def __init__(self, subject: str, html: str) -> None:
        self._undefined = _Counter()
        undefined = _undefined_class(self._undefined)
        self._html = SandboxedEnvironment(autoescape=True, undefined=undefined).from_string(html)
        self._subject = SandboxedEnvironment(autoescape=False, undefined=undefined).from_string(subject)

    @property
    def undefined_variables(self) -> int:
        """How many times a template asked for a variable the contact does not have."""
        return self._undefined.count

    def render(self, email: str, attributes: dict) -> tuple[str, str, str]:
        """(subject, html, text) for one contact."""
        values = {**attributes, "email": email}
        html = self._html.render(values)
        # A subject is one line: a newline in contact data must not inject a header.
        subject = " ".join(self._subject.render(values).split())
        return subject, html, html_to_text(html)


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section"})
    _SKIPPED = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self._href:
            self.parts.append(f" ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


_BLANKS = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """The plain-text part derived from the HTML: text, line breaks at blocks, links as (url)."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (_BLANKS.sub(" ", line).strip() for line in "".join(extractor.parts).splitlines())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"
