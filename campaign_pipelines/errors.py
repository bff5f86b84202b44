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


def unknown(kind: str, name: str, existing: list[str], *, shown: int = 20) -> str:
    """`server 'X' does not exist; existing servers: 'A', 'B'`: what the user may have meant instead."""
    return f"{kind} '{name}' does not exist; {existing_names(kind, existing, shown=shown)}"


def existing_names(kind: str, names: list[str], *, adjective: str = "existing", shown: int = 20) -> str:
    """`existing servers: 'A', 'B'`, the first `shown` of them, or `no server exists yet`."""
    if not names:
        return f"no {kind} exists yet" if adjective == "existing" else f"no {kind} is {adjective}"
    listed = ", ".join(f"'{name}'" for name in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{adjective} {kind}s: {listed}{more}"
