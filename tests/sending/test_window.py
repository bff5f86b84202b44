"""CallWindow: as many calls in flight as cover their latency with the line's own work, within its ceiling."""

from __future__ import annotations

import pytest

from campaign_pipelines.sending.window import CallWindow


def test_one_call_until_both_times_are_measured() -> None:
    window = CallWindow(8)
    assert window.size() == 1
    window.prepared(0.1)
    assert window.size() == 1
    window.answered(0.2)
    assert window.size() == 2


def test_latency_over_preparation_rounded_up_within_the_ceiling() -> None:
    window = CallWindow(4)
    window.prepared(0.11)
    window.answered(0.2)  # 1.8 calls' worth of latency: two keep the line busy
    assert window.size() == 2
    slow = CallWindow(4)
    slow.prepared(0.01)
    slow.answered(10.0)
    assert slow.size() == 4  # never above the ceiling
    fast = CallWindow(4)
    fast.prepared(0.05)
    fast.answered(0.001)  # answers come faster than the line prepares: one is enough
    assert fast.size() == 1


def test_a_calls_own_interpreter_time_counts_as_the_lines_work() -> None:
    window = CallWindow(8)
    window.prepared(0.1)
    window.answered(0.3, cpu_s=0.05)  # 0.3 s of latency over 0.15 s of work per call
    assert window.size() == 2
    quick = CallWindow(8)
    quick.prepared(0.0005)
    quick.answered(0.001, cpu_s=0.0006)  # a provider answering at once: the line is bound by its interpreter
    assert quick.size() == 1


def test_the_shortest_recent_answer_is_the_latency() -> None:
    window = CallWindow(8)
    window.prepared(0.1)
    for seconds in (0.2, 0.9, 0.7):  # answers held up by the loop's own work do not widen it
        window.answered(seconds)
    assert window.size() == 2
    for _ in range(16):  # the provider itself slowed down: the window follows
        window.answered(0.5)
    assert window.size() == 5


def test_a_rate_limit_halves_the_ceiling_down_to_one() -> None:
    window = CallWindow(8)
    window.prepared(0.01)
    window.answered(1.0)
    assert window.size() == 8
    window.rate_limited()
    assert (window.ceiling, window.size()) == (4, 4)
    for _ in range(5):
        window.rate_limited()
    assert (window.ceiling, window.size()) == (1, 1)


def test_a_line_needs_room_for_one_call() -> None:
    with pytest.raises(ValueError, match="at least one call in flight, not 0"):
        CallWindow(0)
