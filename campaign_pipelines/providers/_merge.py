"""Turn N fully rendered texts back into one shared template plus small per-recipient values.

Some providers merge per-recipient values into one shared body on their side (substitutions,
recipient variables); they do not take N different bodies. Our messages come fully rendered,
so for a batch call we recover what they share: texts made from one template have the same lines
except a few (greeting, links carrying tokens), so lines equal in every text stay literal and each
run of differing lines becomes a slot, trimmed to the part that really differs. Texts whose line
counts differ fall back to one slot between their common prefix and common suffix. The cost is
linear in the size of the texts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Message = TypeVar("Message")


@dataclass(frozen=True)
class Merged:
    """`literals[0] + values[k][0] + literals[1] + … + literals[-1]` rebuilds text k exactly."""

    literals: list[str]
    values: list[list[str]]

    @property
    def slots(self) -> int:
        return len(self.literals) - 1

    def rebuild(self, k: int) -> str:
        parts = [self.literals[0]]
        for value, literal in zip(self.values[k], self.literals[1:], strict=True):
            parts += (value, literal)
        return "".join(parts)


def factor(texts: Sequence[str], *, max_slots: int) -> Merged:
    """The shared literals and per-text values of `texts`, with at most `max_slots` slots."""
    first = texts[0]
    if all(text == first for text in texts):
        return Merged([first], [[] for _ in texts])
    lines = [text.splitlines(keepends=True) for text in texts]
    count = len(lines[0])
    if all(len(each) == count for each in lines):
        runs = _differing_runs(lines, count)
        if len(runs) > max_slots:
            runs = [(runs[0][0], runs[-1][1])]
    else:
        runs = []
    if not runs:
        # One slot over the whole text, trimmed below to what differs.
        literals = ["", ""]
        values = [[text] for text in texts]
    else:
        head = lines[0]
        literals = ["".join(head[: runs[0][0]])]
        for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
            literals.append("".join(head[end:start]))
        literals.append("".join(head[runs[-1][1] :]))
        values = [["".join(each[start:end]) for start, end in runs] for each in lines]
    return _trim(literals, values)


def values_per_message(
    messages: Sequence[Message],
    *,
    alone: Callable[[Message], bool],
    values: Callable[[list[Message]], list[dict[str, str]]],
) -> list[dict[str, str] | None]:
    """What each message carries per recipient when merged with every other message that can be
    (`values(those)`), or None for a message that must go alone (`alone(message)`). Any subset of
    them shares at least these literals, so its values are no larger unless the slot cap
    collapses slots; send() checks its own limits again."""
    mergeable = [message for message in messages if not alone(message)]
    merged = iter(values(mergeable) if len(mergeable) > 1 else [{} for _ in mergeable])
    return [None if alone(message) else next(merged) for message in messages]


def _differing_runs(lines: list[list[str]], count: int) -> list[tuple[int, int]]:
    """[start, end) line ranges where not every text has the same line."""
    runs: list[tuple[int, int]] = []
    start = None
    total = len(lines)
    for index, column in enumerate(zip(*lines, strict=True)):
        same = column.count(column[0]) == total
        if not same and start is None:
            start = index
        elif same and start is not None:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, count))
    return runs


def _trim(literals: list[str], values: list[list[str]]) -> Merged:
    """Move each slot's common prefix and suffix into the literals around it; drop empty slots."""
    out_literals = [literals[0]]
    kept: list[list[str]] = [[] for _ in values]
    for slot in range(len(literals) - 1):
        column = [each[slot] for each in values]
        prefix = os.path.commonprefix(column)
        if prefix:
            column = [value[len(prefix) :] for value in column]
        suffix = os.path.commonprefix([value[::-1] for value in column])[::-1]
        if suffix:
            column = [value[: -len(suffix)] for value in column]
        out_literals[-1] += prefix
        if any(column):
            for row, value in zip(kept, column, strict=True):
                row.append(value)
            out_literals.append(suffix + literals[slot + 1])
        else:
            out_literals[-1] += suffix + literals[slot + 1]
    return Merged(out_literals, kept)
