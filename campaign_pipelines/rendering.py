"""Each recipient's message rendered from the campaign's template snapshot.

A sandboxed Jinja2 with autoescape: contact attributes are data, never code or markup. An
undefined variable renders empty and is counted, so a typo in a template never stops a send;
an attribute the sandbox forbids (`''.__class__`) raises SecurityError instead of rendering
empty, and so does repeating a text or list past `MAX_REPEATED` items (`'a' * 10**9`). The
send loop fails the one contact whose rendering raised, and sends the others.

With tracking, every static http(s) link of the template becomes `<base>/c/<token>/<n>` (n: its
number in the campaign's link table), an invisible pixel `<base>/o/<token>.gif` is added, the
unsubscribe link goes where the template puts `{{ unsubscribe_url }}` (else in a footer), and
each message carries RFC 8058 one-click unsubscribe headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from campaign_pipelines.tracking.links import STATIC_HREF
from campaign_pipelines.tracking.tokens import make_token


@dataclass(frozen=True)
class Tracking:
    """Where the tracking app answers and how its tokens are signed."""

    base_url: str
    secret: bytes
    # Also offered in List-Unsubscribe (mailto:), for clients that do not POST.
    unsubscribe_mailto: str | None = None
    # Gmail feedback loop sender id: Feedback-ID "<campaign>:<line>:campaigns:<sender id>".
    feedback_sender_id: str | None = None


_CLICK_BASE = "tracking_click_base"
_FOOTER = (
    '<p style="font-size:12px;color:#777;text-align:center">'
    "Vous ne souhaitez plus recevoir nos emails ? / No longer interested? "
    '<a href="{{ unsubscribe_url }}">Se désinscrire / Unsubscribe</a></p>'
)
_PIXEL = '<img src="{{ tracking_pixel_url }}" width="1" height="1" alt="" style="display:none;border:0">'
_BODY_END = re.compile(r"</body\s*>", re.I)


def _instrument(html: str, links: list[str]) -> str:
    """The template source with tracked links, an unsubscribe link and the pixel in place."""
    numbers = {url: idx for idx, url in enumerate(links)}

    def track(match: re.Match[str]) -> str:
        idx = numbers.get(match["url"])
        if idx is None:
            return match[0]
        quote = match["quote"]
        return f"{match['attr']}{quote}{{{{ {_CLICK_BASE} }}}}/{idx}{quote}"

    html = STATIC_HREF.sub(track, html)
    tail = ("" if "unsubscribe_url" in html else _FOOTER) + _PIXEL
    end = _BODY_END.search(html)
    return html[: end.start()] + tail + html[end.start() :] if end else html + tail


# Items (characters) a `*` in a template may make: far above any email, far below a memory bomb.
MAX_REPEATED = 1_000_000


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, and `*` may not build a huge text or list."""

    intercepted_binops = frozenset({"*"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: object, right: object) -> object:
        if operator == "*":
            for items, times in ((left, right), (right, left)):
                if (
                    isinstance(items, str | list | tuple)
                    and isinstance(times, int)
                    and len(items) * times > MAX_REPEATED
                ):
                    raise SecurityError(f"the template repeats a value into more than {MAX_REPEATED:,} items")
        return super().call_binop(context, operator, left, right)


class _Counter:
    def __init__(self) -> None:
        self.count = 0


def _undefined_class(counter: _Counter) -> type[jinja2.Undefined]:
    class CountingUndefined(jinja2.ChainableUndefined):
        def __str__(self) -> str:
            if self._undefined_exception is SecurityError:
                self._fail_with_undefined_error()
            counter.count += 1
            return ""

    return CountingUndefined


# Jinja's own globals (range, dict, namespace…), flattened once: Template.render merges them
# into every context through a ChainMap, which cost more than rendering a small template.
_GLOBALS = dict(Sandbox().globals)


def _render(template: jinja2.Template, values: dict) -> str:
    """Template.render for a context already holding the globals: no copy, no merge."""
    env = template.environment
    context = env.context_class(env, values, template.name, template.blocks)
    return env.concat(template.root_render_func(context))


class MessageRenderer:
    """Compiles a campaign's subject and HTML once; renders them per contact."""

    def __init__(
        self,
        subject: str,
        html: str,
        *,
        tracking: Tracking | None = None,
        campaign_id: int = 0,
        line_id: int = 0,
        links: list[str] | None = None,
    ) -> None:
        self._undefined = _Counter()
        undefined = _undefined_class(self._undefined)
        self._tracking = tracking
        self._campaign_id = campaign_id
        self._feedback_id = (
            f"{campaign_id}:{line_id}:campaigns:{tracking.feedback_sender_id}"
            if tracking and tracking.feedback_sender_id
            else None
        )
        self._base = tracking.base_url.rstrip("/") if tracking else ""
        if tracking is not None:
            html = _instrument(html, links or [])
        self._html = Sandbox(autoescape=True, undefined=undefined).from_string(html)
        self._subject = Sandbox(autoescape=False, undefined=undefined).from_string(subject)
        # The plain-text part is derived from the template once, its expressions kept, and then
        # rendered per contact (unescaped: it is text): converting each rendered HTML would cost
        # ~15 times the rendering itself. Undefined variables are counted once, on the HTML.
        self._text = Sandbox(
            autoescape=False, undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True
        ).from_string(html_to_text(html))

    @property
    def undefined_variables(self) -> int:
        """How many times a template asked for a variable the contact does not have."""
        return self._undefined.count

    def render(self, email: str, attributes: dict, contact_id: int = 0) -> tuple[str, str, str, dict[str, str]]:
        """(subject, html, text, headers) for one contact."""
        tracking = self._tracking
        if tracking is None:
            values = {**_GLOBALS, **attributes, "email": email}
            headers: dict[str, str] = {}
        else:
            token = make_token(tracking.secret, self._campaign_id, contact_id)
            unsubscribe = f"{self._base}/u/{token}"
            # Ours last: contact data never overrides a tracking URL.
            values = {
                **_GLOBALS,
                **attributes,
                "email": email,
                _CLICK_BASE: f"{self._base}/c/{token}",
                "tracking_pixel_url": f"{self._base}/o/{token}.gif",
                "unsubscribe_url": unsubscribe,
            }
            targets = f"<{unsubscribe}>"
            if tracking.unsubscribe_mailto:
                targets += f", <mailto:{tracking.unsubscribe_mailto}?subject=unsubscribe-{token}>"
            headers = {"List-Unsubscribe": targets, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
            if self._feedback_id:
                headers["Feedback-ID"] = self._feedback_id
        html = _render(self._html, values)
        # A subject is one line: a newline in contact data must not inject a header.
        subject = " ".join(_render(self._subject, values).split())
        text = _render(self._text, values)
        if "\n\n\n" in text:  # a search is ~10 times cheaper than the regex finding nothing
            text = _BLANK_LINES.sub("\n\n", text)
        text = text.strip() + "\n"
        return subject, html, text, headers


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
