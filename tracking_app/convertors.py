"""Path convertors `token` and `link`: only canonical spellings can match a route.

base64 decoding would also accept `+` and `/`, and ignores stray characters: a URL that is not
exactly a token we made is a 404 before any decoding.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from campaign_pipelines.tracking.tokens import TOKEN_LENGTH


class TokenConvertor(Convertor[str]):
    regex = f"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("token", TokenConvertor())


class LinkNumberConvertor(Convertor[int]):
    """A link's number in its canonical spelling (no sign, no leading zero), small enough for an integer column."""

    regex = "0|[1-9][0-9]{0,8}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("link", LinkNumberConvertor())
