"""The subscriber registry from CSV and the opt-outs: import, re-import, laziness, targeting."""

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from campaigns import areas, optouts, registry, spreadsheet, synthetic, targeting
from campaigns.errors import InvalidInput
from campaigns.models import (
    AuditEntry,
    Campaign,
    OptOut,
    Priority,
    Role,
    Subscriber,
)
from campaigns.people import create_authority, create_user
from campaigns.registry import ImportSummary, Staged
from dispatcher.api.app import create_app
from dispatcher.commands.subscribers import import_file
from dispatcher.db import session_scope

# Line 1 is the header; the comment after each row says what must become of it.
REGISTRY = """\
msisdn,area_code,status,name
0162 345 6789,622,active,An
+84 91 234 5678,623,,Bình
84912345679,624,INACTIVE,Cường
0912abc678,622,active,Dũng

02693823456,622,active,Em
0912345680,999,active,Giang
0912345681,622,gone!,Hà
,622,active,Hải
0912 345 678,625,active,Khánh
"""
# (line, column, raw, reason) of every rejected row; line 6 is blank and skipped.
REJECTED = [
    ("5", "msisdn", "0912abc678", "invalid"),
    ("7", "msisdn", "02693823456", "not_mobile"),
    ("8", "area_code", "999", "unknown_area"),
    ("9", "status", "gone!", "invalid_status"),
    ("10", "msisdn", "", "empty"),
]
EXPECTED = {
    "+84323456789": ("622", "active"),  # the old 0162 number, converted
    "+84912345678": ("625", "active"),  # written twice: the last row wins
    "+84912345679": ("624", "inactive"),
}


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        areas.seed(session)
    return engine


def _import(engine: Engine, path: Path, rejections: Path | None = None) -> ImportSummary:
    summary, _ = import_file(path, rejections, Console(file=io.StringIO()), engine=engine)
    return summary


def _registry(engine: Engine) -> dict[str, tuple[str, str]]:
    with Session(engine) as session:
        return {s.msisdn: (s.area_code, s.status) for s in session.exec(select(Subscriber))}


def _counts(summary: ImportSummary) -> tuple[int, int, int, int]:
    return summary.inserted, summary.updated, summary.unchanged, summary.duplicates


def test_import_normalises_converts_and_reports_each_rejected_line(
    seeded: Engine, tmp_path: Path
) -> None:
    path, rejections = tmp_path / "registry.csv", tmp_path / "rejections.csv"
    path.write_text(REGISTRY, encoding="utf-8")
    summary = _import(seeded, path, rejections)
    assert _registry(seeded) == EXPECTED
    assert summary.read == 9  # the blank line is no row
    assert _counts(summary) == (3, 0, 0, 1)
    assert summary.rejected == {
        "invalid": 1,
        "not_mobile": 1,
        "unknown_area": 1,
        "invalid_status": 1,
        "empty": 1,
    }
    assert summary.ignored_columns == ["name"]
    with rejections.open(newline="", encoding="utf-8") as stream:
        assert list(map(tuple, csv.reader(stream))) == [
            ("line", "column", "raw", "reason"),
            *REJECTED,
        ]


def test_reimport_changes_nothing_and_a_changed_row_is_updated(
    seeded: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(REGISTRY, encoding="utf-8")
    _import(seeded, path)
    assert _counts(_import(seeded, path)) == (0, 0, 3, 1)
    assert _registry(seeded) == EXPECTED
    path.write_text(REGISTRY.replace("84912345679,624,INACTIVE", "84912345679,624,active"))
    assert _counts(_import(seeded, path)) == (0, 1, 2, 1)
    assert _registry(seeded)["+84912345679"] == ("624", "active")


def test_a_generated_registry_imports_as_generated(seeded: Engine, tmp_path: Path) -> None:
    path, rejections = tmp_path / "registry.csv", tmp_path / "rejections.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        stats = synthetic.write_registry(out=stream, count=3000, seed=7)
    summary = _import(seeded, path, rejections)
    assert stats.messy > 0 and stats.duplicates > 0
    assert summary.read == 3000
    assert sum(summary.rejected.values()) == stats.messy
    assert summary.duplicates == stats.duplicates
    assert summary.inserted == 3000 - stats.messy - stats.duplicates
    assert summary.ignored_columns == ["subscription"]
    # Every rejection names the line it came from, with the value found there.
    lines = path.read_text(encoding="utf-8").splitlines()
    with rejections.open(newline="", encoding="utf-8") as stream:
        found = list(csv.DictReader(stream))
    assert len(found) == stats.messy
    for rejection in found:
        row = dict(
            zip(
                synthetic.REGISTRY_COLUMNS,
                next(csv.reader([lines[int(rejection["line"]) - 1]])),
                strict=True,
            )
        )
        assert spreadsheet.cell(row[rejection["column"]]) == rejection["raw"]
    old = [row[0] for row in csv.reader(lines) if row[0].startswith("016") and row[1] != "999"]
    assert old, "the generator writes some old 11-digit numbers"
    registered = _registry(seeded)
    for number in old:
        assert "+843" + number[3:] in registered  # 0162 123 4567 -> +84 32 123 4567
    assert _counts(_import(seeded, path))[:2] == (0, 0)


def test_the_importer_reads_lazily_one_chunk_at_a_time(seeded: Engine) -> None:
    chunk_rows = 50
    staged = Staged()
    held: list[int] = []

    def progress(now: Staged) -> None:
        staged.read = now.read

    def lines() -> Iterator[str]:
        yield "msisdn,area_code\n"
        for i in range(1000):
            held.append(i - staged.read)  # rows taken from the file but not yet staged
            yield f"09120{i:05d},622\n"

    with session_scope(seeded) as session:
        result = registry.stage_subscribers(
            session=session, lines=lines(), on_chunk=progress, chunk_rows=chunk_rows
        )
        registry.merge_subscribers(session=session, staged=result, actor="test")
    assert max(held) == chunk_rows - 1
    assert result.read == result.staged == 1000
    assert len(_registry(seeded)) == 1000


def test_a_file_without_the_required_columns_is_refused(seeded: Engine) -> None:
    with session_scope(seeded) as session, pytest.raises(InvalidInput, match="area_code"):
        registry.import_subscribers(session=session, lines=["msisdn\n", "0912345678\n"], actor="t")


def test_the_import_is_audited_without_numbers(seeded: Engine, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(REGISTRY, encoding="utf-8")
    _import(seeded, path)
    with Session(seeded) as session:
        [entry] = session.exec(select(AuditEntry)).all()
    assert (entry.actor, entry.action) == ("cli", "subscribers.import")
    assert "912" not in entry.details


# --- opt-outs ---------------------------------------------------------------------------------


def _campaign(priority: Priority, **changes: object) -> Campaign:
    fields: dict[str, object] = {
        "title": "t",
        "text": "x",
        "sender": "GiaLai",
        "target_areas": ["622"],
        "priority": priority,
        "authority_id": 1,
        "created_by_id": 1,
    }
    return Campaign(**(fields | changes))


def test_an_opt_out_is_honoured_for_normal_campaigns_only(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        synthetic.insert_subscribers(session=session, count=200, seed=3)
        reached = targeting.count_recipients(
            session=session, campaign=_campaign(Priority.NORMAL, target_areas=["64"])
        )
        subscriber = session.exec(select(Subscriber).order_by(col(Subscriber.id))).first()
        assert subscriber is not None
        summary = optouts.import_opt_outs(
            session=session,
            lines=["msisdn,source\n", f"0{subscriber.msisdn[3:]},hotline\n", "0912ab\n"],
            source="import",
            actor="test",
        )
        assert (summary.read, summary.added, summary.rejected) == (2, 1, {"invalid": 1})
        normal = _campaign(Priority.NORMAL, target_areas=["64"])
        urgent = _campaign(Priority.URGENT, target_areas=["64"])
        assert reached == 200
        assert targeting.count_recipients(session=session, campaign=normal) == 199
        assert targeting.count_recipients(session=session, campaign=urgent) == 200
        assert session.get(OptOut, subscriber.msisdn).source == "hotline"  # type: ignore[union-attr]


def test_an_opt_out_import_keeps_the_first_record_of_a_number(seeded: Engine) -> None:
    lines = ["0912345678\n", "+84 912 345 678\n", "0912345679\n", "+66812345678\n"]
    with session_scope(seeded) as session:
        first = optouts.import_opt_outs(session=session, lines=lines, source="a", actor="t")
        again = optouts.import_opt_outs(session=session, lines=lines, source="b", actor="t")
        sources = {o.msisdn: o.source for o in session.exec(select(OptOut))}
    assert (first.read, first.added, first.unchanged, first.rejected) == (4, 2, 1, {"foreign": 1})
    assert (again.added, again.unchanged) == (0, 3)
    assert sources == {"+84912345678": "a", "+84912345679": "a"}


@pytest.fixture
def client(settings_env: None, seeded: Engine) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def _headers(engine: Engine, role: Role) -> dict[str, str]:
    with session_scope(engine) as session:
        authority = None
        if role in (Role.SUBMITTER, Role.APPROVER):
            authority = create_authority(session=session, code="A", name="A", areas=["64"])
        _, token = create_user(
            session=session, username=str(role), name=str(role), role=role, authority=authority
        )
    return {"Authorization": f"Bearer {token}"}


def test_operators_add_read_and_remove_opt_outs(client: TestClient, seeded: Engine) -> None:
    operator = _headers(seeded, Role.OPERATOR)
    body = {"msisdn": "0162 345 6789", "source": "hotline"}
    added = client.post("/v1/opt-outs", headers=operator, json=body)
    assert added.status_code == 201, added.text
    assert added.json()["msisdn"] == "+84323456789"
    assert client.post("/v1/opt-outs", headers=operator, json=body).status_code == 200
    found = client.get("/v1/opt-outs/%2B84323456789", headers=operator)
    assert (found.status_code, found.json()["source"]) == (200, "hotline")
    assert client.delete("/v1/opt-outs/0323456789", headers=operator).status_code == 204
    missing = client.get("/v1/opt-outs/0323456789", headers=operator)
    assert missing.status_code == 404
    assert "456789" not in missing.text  # the number is masked in the message
    with Session(seeded) as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))]
        subjects = " ".join(e.subject for e in session.exec(select(AuditEntry)))
    assert actions == ["opt_out.add", "opt_out.remove"]
    assert "456789" not in subjects


def test_an_invalid_number_is_refused_masked(client: TestClient, seeded: Engine) -> None:
    operator = _headers(seeded, Role.OPERATOR)
    answer = client.post("/v1/opt-outs", headers=operator, json={"msisdn": "0269 3823 456"})
    assert answer.status_code == 422
    assert "not_mobile" in answer.text and "3823" not in answer.text


@pytest.mark.parametrize("role", [Role.SUBMITTER, Role.APPROVER, Role.AUDITOR])
def test_only_operators_and_admins_manage_opt_outs(
    client: TestClient, seeded: Engine, role: Role
) -> None:
    headers = _headers(seeded, role)
    answers = [
        client.post("/v1/opt-outs", headers=headers, json={"msisdn": "0912345678"}),
        client.get("/v1/opt-outs/0912345678", headers=headers),
        client.delete("/v1/opt-outs/0912345678", headers=headers),
    ]
    assert [a.status_code for a in answers] == [403, 403, 403]
    with Session(seeded) as session:
        assert session.exec(select(OptOut)).all() == []
