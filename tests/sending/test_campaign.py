"""A campaign's sending lifecycle: which lines a run sends."""

from __future__ import annotations

import threading
import time

from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.connection import connect
from tests.sending.fixtures import BREVO, SENDGRID


def test_a_line_held_by_a_live_run_is_left_to_it(db, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    held, free = setup.line_ids
    db.execute(
        "UPDATE campaign_channels SET status = 'sending', run_id = 'other', heartbeat_at = now() WHERE id = %s", (held,)
    )

    planned = lifecycle.lines_to_run(db, setup.campaign_id, None, run_id="mine", stale_after_s=120)

    assert [line.id for line in planned] == [free]


class _PausedAfterLineUpdate:
    """A connection pausing a results recorder's transaction once it has updated its line's row,
    until `go` is set: where an operator's action can come in between."""

    def __init__(self, conn, paused: threading.Event, go: threading.Event) -> None:
        self._conn, self._paused, self._go = conn, paused, go

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    def execute(self, query, *args, **kwargs):
        cursor = self._conn.execute(query, *args, **kwargs)
        if isinstance(query, str) and query.startswith("UPDATE campaign_channels"):
            self._paused.set()
            self._go.wait(10)
        return cursor


def _waits_for_a_lock(db, pid: int) -> bool:
    row = db.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def test_resending_unknown_contacts_while_a_line_records_its_results_fails_neither(
    db, database_url, make_campaign
) -> None:
    setup = make_campaign(10, [SENDGRID])
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)
    claimed = [c.id for c in send_sql.claim(db, setup.campaign_id, line_id, "run", 10).contacts]
    paused, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def record() -> None:
        with connect(database_url) as conn:
            try:
                send_sql.record_results(
                    _PausedAfterLineUpdate(conn, paused, go), setup.campaign_id, line_id, "run", ids=claimed,
                    statuses=[ContactStatus.SENT] * 10, message_ids=[None] * 10, errors=[None] * 10,
                )  # fmt: skip
            except BaseException as error:
                errors.append(error)

    def resend(conn) -> None:
        try:
            lifecycle.apply(conn, setup.campaign_id, "resend_unknown")
        except BaseException as error:
            errors.append(error)

    recorder = threading.Thread(target=record)
    recorder.start()
    assert paused.wait(10)
    with connect(database_url) as operator:
        pid = operator.info.backend_pid
        action = threading.Thread(target=resend, args=(operator,))
        action.start()
        deadline = time.monotonic() + 10
        while not _waits_for_a_lock(db, pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _waits_for_a_lock(db, pid)
        go.set()
        recorder.join()
        action.join()

    assert errors == []
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 10}


class _PausedAfterLinesLock(_PausedAfterLineUpdate):
    """A connection pausing an operator's action once it has locked the campaign's lines."""

    def execute(self, query, *args, **kwargs):
        cursor = self._conn.execute(query, *args, **kwargs)
        if isinstance(query, str) and query.startswith("SELECT 1 FROM campaign_channels WHERE campaign_id"):
            self._paused.set()
            self._go.wait(10)
        return cursor


def test_resending_unknown_contacts_while_the_campaign_is_resumed_fails_neither(
    db, database_url, make_campaign
) -> None:
    setup = make_campaign(10, [SENDGRID])
    lifecycle.control(db, setup.campaign_id, "pause")
    db.execute("UPDATE campaign_channels SET status = 'paused' WHERE campaign_id = %s", (setup.campaign_id,))
    paused, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def act(conn, action: str) -> None:
        try:
            lifecycle.apply(conn, setup.campaign_id, action)
        except BaseException as error:
            errors.append(error)

    with connect(database_url) as resender, connect(database_url) as resumer:
        resend = threading.Thread(target=act, args=(_PausedAfterLinesLock(resender, paused, go), "resend_unknown"))
        resend.start()
        assert paused.wait(10)
        resume = threading.Thread(target=act, args=(resumer, "resume"))
        resume.start()
        pid = resumer.info.backend_pid
        deadline = time.monotonic() + 10
        while not _waits_for_a_lock(db, pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _waits_for_a_lock(db, pid)
        go.set()
        resend.join()
        resume.join()

    assert errors == []
    assert [line.status for line in line_sql.lines_of(db, setup.campaign_id)] == ["pending"]
