"""A line's quotas for the day, its reservations on their Redis counters all at once, and the run
going on with PostgreSQL alone once Redis fails."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import redis

from campaign_pipelines.quotas import RedisQuotas
from campaign_pipelines.sending.reservations import Reservations, day_quotas
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store.quotas import Quota
from tests.sending.fixtures import BREVO, DAY

LINE = Quota("line:1", DAY, 100, "100/day")
SERVER = Quota("server:1", DAY, 30, "server cap 30/day")


def test_the_tightest_quota_bounds_every_counter_and_unused_sends_go_back(db, cache: RedisQuotas) -> None:
    warnings: list[str] = []
    reservations = Reservations(db, cache, warnings.append)

    granted, full, give_back = reservations.reserve([LINE, SERVER], 50)
    assert (granted, full) == (30, None)
    assert (cache.used("line:1", DAY), cache.used("server:1", DAY)) == (30, 30)
    give_back(10)
    assert (cache.used("line:1", DAY), cache.used("server:1", DAY)) == (20, 20)

    reservations.reserve([LINE, SERVER], 10)
    granted, full, _ = reservations.reserve([LINE, SERVER], 10)
    assert (granted, full) == (0, SERVER)
    assert (cache.used("line:1", DAY), cache.used("server:1", DAY)) == (30, 30)  # nothing kept on the line
    assert warnings == []


def test_an_unreachable_redis_grants_what_is_wanted_and_says_so_once(db) -> None:
    unreachable = RedisQuotas(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5), "x")
    warnings: list[str] = []
    reservations = Reservations(db, unreachable, warnings.append)

    assert reservations.reserve([LINE], 50)[:2] == (50, None)
    assert reservations.reserve([LINE], 50)[:2] == (50, None)
    assert len(warnings) == 1 and warnings[0].startswith("Redis is unreachable (")
    assert warnings[0].endswith("the rest of this run counts its quotas in PostgreSQL alone")


def test_a_send_is_charged_to_its_lines_quota_and_its_servers_cap_in_the_servers_day(db, make_campaign) -> None:
    setup = make_campaign(1, [{**BREVO, "max_daily_sends": 500}])
    db.execute("UPDATE servers SET daily_cap = 1000, timezone = 'Europe/Paris'")
    line = line_sql.line_by_id(db, setup.line_ids[0])

    # 23:30 UTC is already the next day in Paris.
    quotas, next_day = day_quotas(line, datetime(2026, 12, 1, 23, 30, tzinfo=UTC))

    paris_day = date(2026, 12, 2)
    assert quotas == [
        Quota(f"line:{line.id}", paris_day, 500, "500/day"),
        Quota(f"server:{line.server_id}", paris_day, 1000, "server cap 1000/day"),
    ]
    assert next_day == datetime(2026, 12, 3, tzinfo=ZoneInfo("Europe/Paris"))


def test_a_line_without_limits_is_charged_to_no_quota(db, make_campaign) -> None:
    setup = make_campaign(1, [BREVO])

    quotas, _ = day_quotas(line_sql.line_by_id(db, setup.line_ids[0]), datetime(2026, 12, 1, tzinfo=UTC))

    assert quotas == []
