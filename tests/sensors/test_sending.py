"""The sensors and the schedule that start and restart `send_campaign`, against the real database.

Each call to `tick()` / `hourly()` is one evaluation, as the daemon makes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from campaign_pipelines.ops.send import send_campaign
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.sensors.sending import campaign_launch_sensor, relaunch_stalled, stalled_lines_sensor
from campaign_pipelines.store import lines as line_sql
from tests.sending.fixtures import BREVO, SENDGRID


@pytest.fixture
def resources(database_url: str) -> dict:
    return {"database": PostgresResource(url=database_url)}


@pytest.fixture
def launch_tick(instance: dg.DagsterInstance, resources: dict):
    def tick() -> dg.SensorResult:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            result = campaign_launch_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    return tick


@pytest.fixture
def stalled_tick(instance: dg.DagsterInstance, resources: dict):
    def tick() -> dg.SensorResult:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            result = stalled_lines_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    return tick


@pytest.fixture
def hourly(instance: dg.DagsterInstance, resources: dict):
    def evaluate() -> list[dg.RunRequest] | dg.SkipReason:
        # As a context manager: the instance the context re-opens from its ref is closed with it
        # (otherwise it stays Dagster's current defs-state storage and breaks later tests).
        with dg.build_schedule_context(
            instance=instance, resources=resources, scheduled_execution_time=datetime.now(UTC)
        ) as context:
            return relaunch_stalled(context)

    return evaluate


def plan_config(request: dg.RunRequest) -> dict:
    """What plan_channels will be told (campaign id, lines)."""
    return request.run_config["ops"]["plan_channels"]["config"]


def assert_valid_for_the_job(request: dg.RunRequest) -> None:
    assert dg.validate_run_config(send_campaign, request.run_config)


def set_line(db: psycopg.Connection, line_id: int, status: str, **columns: object) -> None:
    """A line as a run left it: its status, and its heartbeat_at / next_run_at."""
    db.execute("UPDATE campaign_channels SET status = %s, run_id = 'run-1' WHERE id = %s", (status, line_id))
    for column, value in columns.items():
        assert column in ("heartbeat_at", "next_run_at")
        query = sql.SQL("UPDATE campaign_channels SET {} = %s WHERE id = %s").format(sql.Identifier(column))
        db.execute(query, (value, line_id))


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


# --- campaign_launch_sensor ---------------------------------------------------------------


def test_a_scheduled_imported_campaign_is_launched_once(db, launch_tick, make_campaign) -> None:
    setup = make_campaign(5, [BREVO], launch=False)

    result = launch_tick()

    (request,) = result.run_requests
    assert plan_config(request) == {"campaign_id": setup.campaign_id}
    assert request.tags == {"campaign": str(setup.campaign_id)}
    assert request.run_key is not None and request.run_key.startswith(f"send-{setup.campaign_id}-")
    assert_valid_for_the_job(request)
    # Until the run has launched it, every tick asks again with the same key: Dagster runs it once.
    assert [again.run_key for again in launch_tick().run_requests] == [request.run_key]


def test_the_earliest_start_date_decides(db, launch_tick, make_campaign) -> None:
    setup = make_campaign(
        5, [{**BREVO, "scheduled_at": later(hours=2)}, {**SENDGRID, "scheduled_at": later(days=1)}], launch=False
    )

    result = launch_tick()

    assert result.run_requests == []
    assert result.skip_reason is not None
    assert result.skip_reason.skip_message == "no campaign is ready to send"

    db.execute("UPDATE campaign_channels SET scheduled_at = %s WHERE id = %s", (ago(minutes=1), setup.line_ids[0]))
    (request,) = launch_tick().run_requests
    assert plan_config(request) == {"campaign_id": setup.campaign_id}


def test_a_campaign_not_imported_or_already_running_is_not_launched(
    db,
    launch_tick,
    make_campaign,
) -> None:
    setup = make_campaign(5, [BREVO], launch=False)
    # Configured again after its import: the new contacts are not imported yet.
    db.execute("UPDATE campaigns SET configured_at = clock_timestamp() WHERE id = %s", (setup.campaign_id,))
    assert launch_tick().run_requests == []

    db.execute(
        "UPDATE campaigns SET imported_at = clock_timestamp(), status = 'running' WHERE id = %s", (setup.campaign_id,)
    )
    assert launch_tick().run_requests == []


def test_a_new_configuration_gets_a_new_run_key(db, launch_tick, make_campaign) -> None:
    setup = make_campaign(5, [BREVO], launch=False)
    (first,) = launch_tick().run_requests

    db.execute(
        "UPDATE campaigns SET configured_at = clock_timestamp(), imported_at = clock_timestamp() + interval '1 second'"
        " WHERE id = %s",
        (setup.campaign_id,),
    )

    (second,) = launch_tick().run_requests
    assert second.run_key != first.run_key


# --- stalled_lines_sensor -----------------------------------------------------------------


def test_a_line_with_a_stale_heartbeat_is_relaunched_alone(db, stalled_tick, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    dead, alive = setup.line_ids
    set_line(db, dead, "sending", heartbeat_at=ago(minutes=10))
    set_line(db, alive, "sending", heartbeat_at=ago(seconds=2))

    (request,) = stalled_tick().run_requests

    assert plan_config(request) == {"campaign_id": setup.campaign_id, "channel_ids": [dead]}
    assert_valid_for_the_job(request)
    line = line_sql.line_by_id(db, dead)
    assert line is not None
    assert request.run_key == f"lines-{setup.campaign_id}-{dead}-{line.attempt}"
    assert line.attempt == 1
    # Leased: the next tick leaves it to the run it asked for.
    second = stalled_tick()
    assert second.run_requests == []
    assert second.skip_reason is not None and second.skip_reason.skip_message == "no line needs a run"

    # That run never came (or died too): once stale again, a new attempt, a new key.
    db.execute("UPDATE campaign_channels SET heartbeat_at = %s WHERE id = %s", (ago(minutes=10), dead))
    (again,) = stalled_tick().run_requests
    assert again.run_key == f"lines-{setup.campaign_id}-{dead}-2"
    assert again.run_key != request.run_key


def test_waits_that_are_over_are_relaunched_and_others_wait(db, stalled_tick, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    due, not_yet = setup.line_ids
    set_line(db, due, "waiting", next_run_at=ago(seconds=5))
    set_line(db, not_yet, "waiting", next_run_at=later(minutes=30))

    (request,) = stalled_tick().run_requests

    assert plan_config(request) == {"campaign_id": setup.campaign_id, "channel_ids": [due]}
    assert request.run_key == f"lines-{setup.campaign_id}-{due}-1"
    assert stalled_tick().run_requests == []


def test_lines_of_a_paused_or_finished_campaign_are_left_alone(db, stalled_tick, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    first, second = setup.line_ids
    set_line(db, first, "sending", heartbeat_at=ago(minutes=10))
    set_line(db, second, "waiting", next_run_at=ago(minutes=1))
    for status in ("paused", "completed", "cancelled"):
        db.execute("UPDATE campaigns SET status = %s WHERE id = %s", (status, setup.campaign_id))

        assert stalled_tick().run_requests == []

    assert [line.attempt for line in line_sql.lines_of(db, setup.campaign_id)] == [0, 0]


def test_lines_quota_reached_wait_for_the_schedule(db, stalled_tick, make_campaign) -> None:
    setup = make_campaign(5, [BREVO])
    set_line(db, setup.line_ids[0], "quota_reached", next_run_at=ago(minutes=1))

    assert stalled_tick().run_requests == []


# --- relaunch_stalled schedule ------------------------------------------------------------


def test_the_schedule_wakes_lines_whose_quota_day_is_over(db, hourly, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    new_day, same_day = setup.line_ids
    set_line(db, new_day, "quota_reached", next_run_at=ago(minutes=1))
    set_line(db, same_day, "quota_reached", next_run_at=later(hours=3))

    requests = hourly()

    assert isinstance(requests, list)
    (request,) = requests
    assert plan_config(request) == {"campaign_id": setup.campaign_id, "channel_ids": [new_day]}
    assert request.run_key == f"lines-{setup.campaign_id}-{new_day}-1"
    assert_valid_for_the_job(request)
    # Leased and no longer quota_reached: the next hour does not ask again.
    skipped = hourly()
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == "no line waits for a new quota day"


def test_the_schedule_skips_when_every_quota_day_is_still_running(db, hourly, make_campaign) -> None:
    setup = make_campaign(5, [BREVO])
    set_line(db, setup.line_ids[0], "quota_reached", next_run_at=later(hours=3))

    skipped = hourly()

    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == "no line waits for a new quota day"
    assert line_sql.lines_of(db, setup.campaign_id)[0].status == "quota_reached"


def test_several_lines_of_one_campaign_share_one_run(db, hourly, make_campaign) -> None:
    setup = make_campaign(5, [BREVO, SENDGRID])
    for line_id in setup.line_ids:
        set_line(db, line_id, "quota_reached", next_run_at=ago(minutes=1))

    (request,) = hourly()

    first, second = setup.line_ids
    assert plan_config(request) == {"campaign_id": setup.campaign_id, "channel_ids": [first, second]}
    assert request.run_key == f"lines-{setup.campaign_id}-{first}_{second}-1"
