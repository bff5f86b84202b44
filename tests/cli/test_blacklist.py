"""`campaigns blacklist` add, list, remove and export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import psycopg


def _blacklist(db: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {
        email: (source, reason) for email, source, reason in db.execute("SELECT email, source, reason FROM blacklist")
    }


def _fill_blacklist(db: psycopg.Connection, count: int) -> None:
    db.execute(
        "INSERT INTO blacklist (email, reason, source, created_at)"
        " SELECT 'user' || lpad(g::text, 6, '0') || '@example.com', 'reason ' || g,"
        " (ARRAY['manual', 'complaint', 'hard_bounce'])[g %% 3 + 1],"
        " '2025-11-28 08:00+00'::timestamptz + g * interval '1 s'"
        " FROM generate_series(1, %s) g",
        (count,),
    )


def test_blacklist_add_list_remove(db: psycopg.Connection, run) -> None:
    code, out, _ = run("blacklist", "add", "  Jean.Dupont@Example.COM ", "--reason", "asked by phone")
    assert code == 0
    assert out == "jean.dupont@example.com blacklisted: no campaign sends to it from its next batch on\n"
    code, out, _ = run("blacklist", "add", "jean.dupont@example.com", "--reason", "again")
    assert code == 0
    assert out.startswith("jean.dupont@example.com was already blacklisted (manual, ")
    assert out.rstrip().endswith("asked by phone")
    assert run("blacklist", "add", "marie@example.com")[0] == 0
    assert _blacklist(db) == {
        "jean.dupont@example.com": ("manual", "asked by phone"),
        "marie@example.com": ("manual", "added by hand"),
    }

    code, out, _ = run("blacklist", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["email", "source", "reason", "added"]
    assert [line.split()[0] for line in lines[2:]] == ["marie@example.com", "jean.dupont@example.com"]

    code, out, err = run("blacklist", "remove", "JEAN.DUPONT@example.com")
    assert code == 0
    assert out == "jean.dupont@example.com removed from the blacklist (it was manual: asked by phone)\n"
    assert err == ""
    assert list(_blacklist(db)) == ["marie@example.com"]


def test_blacklist_refusals(db: psycopg.Connection, run) -> None:
    code, _, err = run("blacklist", "add", "jean.dupont@")
    assert code == 1
    assert "'jean.dupont@'" in err and "it is not an email address" in err
    code, _, err = run("blacklist", "remove", "nobody@example.com")
    assert code == 1
    assert err == "error: nobody@example.com is not blacklisted\n"
    assert _blacklist(db) == {}
    code, _, err = run("blacklist", "list", "--limit", "0")
    assert code == 2
    assert "expected at least 1, got 0" in err
    code, _, err = run("blacklist", "list", "--source", "spam")
    assert code == 2
    assert "invalid choice: 'spam'" in err


def test_blacklist_remove_warns_about_a_complaint(db: psycopg.Connection, run) -> None:
    db.execute(
        "INSERT INTO blacklist (email, reason, source) VALUES ('ana@example.com', 'sendgrid: spam', 'complaint')"
    )
    code, _, err = run("blacklist", "remove", "ana@example.com")
    assert code == 0
    assert err == (
        "warning: ana@example.com was blacklisted after a complaint; mailing it again hurts the sending domain's"
        " reputation\n"
    )


def test_blacklist_list_by_source_and_limit(db: psycopg.Connection, run) -> None:
    _fill_blacklist(db, 30)
    code, out, _ = run("blacklist", "list", "--source", "complaint", "--limit", "4")
    assert code == 0
    lines = out.splitlines()
    # Newest first: 30 is manual (30 % 3 = 0), 29 hard_bounce, 28 complaint.
    assert [line.split()[:2] for line in lines[2:6]] == [
        ["user000028@example.com", "complaint"],
        ["user000025@example.com", "complaint"],
        ["user000022@example.com", "complaint"],
        ["user000019@example.com", "complaint"],
    ]
    assert lines[6] == "(the newest 4: --limit shows more, 'campaigns blacklist export' writes them all)"
    code, out, _ = run("blacklist", "list", "--source", "unsubscribe")
    assert (code, out) == (0, "no address blacklisted by unsubscribe\n")
    db.execute("DELETE FROM blacklist")
    assert run("blacklist", "list") == (0, "the blacklist is empty\n", "")


def test_blacklist_export_to_stdout(db: psycopg.Connection, run) -> None:
    _fill_blacklist(db, 3)
    db.execute("INSERT INTO blacklist (email, reason, source) VALUES ('a@example.com', 'said \"no\", twice', 'manual')")
    code, out, err = run("blacklist", "export")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["email", "reason", "source", "created_at"]
    assert rows[1][:3] == ["a@example.com", 'said "no", twice', "manual"]
    assert rows[2] == ["user000001@example.com", "reason 1", "complaint", "2025-11-28T08:00:01+00:00"]
    assert len(rows) == 5
    assert err == "4 blacklisted address(es) exported\n"


def test_blacklist_export_of_thousands_to_a_file(db: psycopg.Connection, run, tmp_path: Path) -> None:
    _fill_blacklist(db, 7000)
    target = tmp_path / "blacklist.csv"
    code, out, _ = run("blacklist", "export", "--output", str(target))
    assert code == 0
    assert out == f"7,000 blacklisted address(es) exported to {target}\n"
    with target.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert len(rows) == 7001
    assert rows[-1] == ["user007000@example.com", "reason 7000", "complaint", "2025-11-28T09:56:40+00:00"]
    assert [row[0] for row in rows[1:]] == sorted(row[0] for row in rows[1:])
    assert not (tmp_path / "blacklist.csv.partial").exists()


def test_blacklist_export_to_an_unwritable_place_exits_1(db: psycopg.Connection, run, tmp_path: Path) -> None:
    code, _, err = run("blacklist", "export", "--output", str(tmp_path / "missing" / "blacklist.csv"))
    assert code == 1
    assert "cannot write it" in err
