"""Errors the user sees: every message names what is wrong and where."""

from __future__ import annotations


class ValidationError(ValueError):
    """Bad user input; carries every problem found, so one attempt reports them all."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.what = what
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{what}: {len(problems)} problem(s)\n{listed}")


class NotFoundError(LookupError):
    """A server, template or campaign named by the user does not exist."""
