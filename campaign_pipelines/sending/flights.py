"""A line's claimed batches and the provider calls it has in flight (sending.line).

`Flights` runs the calls in a thread pool as wide as the line's window can grow (sending.window)
and hands back the answered ones; what they mean for contacts is left to the line, on its own
connection, in its own thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from campaign_pipelines.providers import Delivery, OutgoingMessage
from campaign_pipelines.rendering import MessageRenderer
from campaign_pipelines.send_ids import send_id
from campaign_pipelines.sending.window import CallWindow
from campaign_pipelines.store.quotas import Quota
from campaign_pipelines.store.sending import ClaimedContact


@dataclass(eq=False)
class Batch:
    """Claimed and rendered contacts, not yet sent."""

    messages: list[OutgoingMessage]
    ids: list[int]
    # The quotas the claim was charged to, and a function giving unused sends back to Redis.
    quotas: list[Quota]
    give_back: Callable[[int], None]
    # The claim's lease (store.sending), and how many of `ids` have no outcome recorded yet:
    # the record settling the last of them ends the lease.
    lease: int
    unsettled: int = field(init=False)

    def __post_init__(self) -> None:
        self.unsettled = len(self.ids)


def render(
    renderer: MessageRenderer, campaign_id: int, contacts: Sequence[ClaimedContact]
) -> tuple[list[OutgoingMessage], list[int], list[int], list[str]]:
    """Each contact's message and id; apart, the contacts whose template failed, and why."""
    messages, ids, unrendered, reasons = [], [], [], []
    for contact in contacts:
        try:
            subject, html, text, headers = renderer.render(contact.email, contact.attributes, contact.id)
        except Exception as error:  # template code run on contact data: any error fails this contact only
            unrendered.append(contact.id)
            reasons.append(f"the template failed for this contact: {type(error).__name__}: {error}")
        else:
            messages.append(
                OutgoingMessage(send_id(campaign_id, contact.id), contact.email, subject, html, text, headers)
            )
            ids.append(contact.id)
    return messages, ids, unrendered, reasons


def call_key(campaign_id: int, ids: Sequence[int]) -> str:
    """The idempotency key of a call for these contacts: the same for its repeat after a lost answer."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"campaign:{campaign_id}:{ids[0]}:{ids[-1]}:{len(ids)}"))


@dataclass(eq=False)
class Flight:
    """A provider call that left (noted in inflight_calls as `call_id`), not yet recorded."""

    batch: Batch
    messages: list[OutgoingMessage]
    ids: list[int]
    call_id: int
    answer: Future[list[Delivery]]


class Flights:
    def __init__(self, window: CallWindow, name: str) -> None:
        """A pool as wide as `window` may grow; every call's answer time is told to `window`."""
        self._window = window
        self._pool = ThreadPoolExecutor(window.ceiling, thread_name_prefix=name)
        self._flying: list[Flight] = []
        # The most calls in flight at once so far.
        self.most = 0

    def __len__(self) -> int:
        return len(self._flying)

    def start(
        self, batch: Batch, messages: list[OutgoingMessage], ids: list[int], call_id: int, call: Callable
    ) -> None:
        """Make `call(messages, ids)` in a thread of the pool."""
        self._flying.append(Flight(batch, messages, ids, call_id, self._pool.submit(self._timed, call, messages, ids)))
        self.most = max(self.most, len(self._flying))

    def _timed(self, call: Callable, messages: list[OutgoingMessage], ids: list[int]) -> list[Delivery]:
        left, cpu = time.monotonic(), time.thread_time()
        try:
            return call(messages, ids)
        finally:
            self._window.answered(time.monotonic() - left, time.thread_time() - cpu)

    def answered(self, *, wait_s: float | None, meanwhile: Callable[[], object] | None = None) -> list[Flight]:
        """The calls answered by now, no longer in flight. `wait_s` given: wait until one is at
        least, running `meanwhile` every `wait_s` seconds."""
        # A look at each call first: wait() locks every future and builds a waiter, which cost
        # one-message lines (a look after each call) a few percent of their rate.
        landed = [flight for flight in self._flying if flight.answer.done()]
        while not landed and self._flying and wait_s is not None:
            done, _ = wait([flight.answer for flight in self._flying], timeout=wait_s, return_when=FIRST_COMPLETED)
            if done:
                landed = [flight for flight in self._flying if flight.answer in done]
            elif meanwhile is not None:
                meanwhile()
        if landed:
            self._flying = [flight for flight in self._flying if flight not in landed]
        return landed

    def close(self) -> None:
        """Wait for the calls still running (they end by their HTTP timeout); start no other."""
        self._pool.shutdown(wait=True, cancel_futures=True)
