"""Benchmark of the campaign report and the delivery log: `python -m dispatcher.report_bench`.

Fills one campaign with `--messages` messages in bulk, inside the database (no row passes
through Python): spread over Gia Lai's 17 districts by population, sent at 500/s, about 93 %
delivered after delays from a second to hours, the rest undeliverable, expired, rejected, failed
at submit, unknown or still pending, each accepted message with its SMSC id. Then times the
report (`campaigns.reports`) and the CSV export (`dispatcher.reports.delivery_log`, written to
a file) and prints the peak memory of this process.

Without DISPATCHER_DATABASE_URL it uses a fresh SQLite file under --var-dir. With a PostgreSQL
URL it works in a scratch schema of its own, dropped at the end.
"""

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from campaigns import areas, reports
from campaigns.models import Campaign, CampaignStatus, MessageStatus, Role
from campaigns.people import create_authority, create_user
from dispatcher import migrate
from dispatcher.db import make_engine, reading
from dispatcher.reports import delivery_log
from dispatcher.settings import get_settings

START = datetime(2020, 2, 4, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam
SEND_INTERVAL_US = 2000  # 500 submits/s

# Outcomes in ten-thousandths: (upper bound, status, last command_status, receipt error).
_OUTCOMES = (
    (9300, MessageStatus.DELIVERED, 0, None),
    (9600, MessageStatus.UNDELIVERABLE, 0, 1),
    (9700, MessageStatus.EXPIRED, 0, 27),
    (9750, MessageStatus.REJECTED, 0, 11),
    (9850, MessageStatus.FAILED, 0x0B, 0x0B),
    (9950, MessageStatus.UNKNOWN, 0, None),
    (10000, MessageStatus.SUBMITTED, 0, None),
)


def _pseudo_random(column: str, multiplier: int) -> str:
    # Reproducible and the same on every database: a multiplicative hash of the row number.
    return f"(({column} * {multiplier}) % 4294967291) % 10000"


def _area_case(column: str) -> str:
    total = sum(population for *_, population in areas.GIA_LAI_DISTRICTS)
    bound, cases = 0, []
    for code, _, _, population in areas.GIA_LAI_DISTRICTS:
        bound += population
        cases.append(f"WHEN {column} < {bound * 10000 // total} THEN '{code}'")
    return f"CASE {' '.join(cases)} ELSE '639' END"


def _outcome_case(column: str, index: int) -> str:
    def value(v: object) -> str:
        return "NULL" if v is None else f"'{v}'" if isinstance(v, str) else str(v)

    cases = " ".join(f"WHEN {column} < {row[0]} THEN {value(row[index])}" for row in _OUTCOMES)
    return f"CASE {cases} END"


def _fill_sql(dialect: str) -> str:
    if dialect == "postgresql":
        numbers = "SELECT CAST(n AS BIGINT) AS n FROM generate_series(1, :count) AS g(n)"
        stamp = "to_timestamp(({us}) / 1000000.0)"
    else:
        numbers = (
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count)"
            " SELECT n FROM seq"
        )
        stamp = (
            "strftime('%Y-%m-%d %H:%M:%S', ({us}) / 1000000, 'unixepoch')"
            " || '.' || printf('%06d', ({us}) % 1000000)"
        )
    sent_us = f":start_us + n * {SEND_INTERVAL_US}"
    # Delays: 80 % within 10 s, 15 % within 10 min, 5 % within 4 h.
    delay_us = (
        "CASE WHEN d < 8000 THEN 200000 + d * 1200 "
        "WHEN d < 9500 THEN 10000000 + (d - 8000) * 393333 "
        "ELSE 600000000 + (d - 9500) * 27600000 END"
    )
    status = _outcome_case("o", 1)
    return f"""
        INSERT INTO message (campaign_id, batch_no, msisdn, area_code, parts, status, error_code,
                             submitted_at, done_at, attempts, last_status)
        SELECT :campaign_id, (n - 1) / 1000, '+84' || CAST(900000000 + n AS TEXT),
               {_area_case("a")}, 1, {status}, {_outcome_case("o", 3)},
               CASE WHEN o < 10000 THEN {stamp.format(us=sent_us)} END,
               CASE WHEN o < 9950 THEN {stamp.format(us=f"{sent_us} + {delay_us}")} END,
               CASE WHEN o < 10000 THEN 1 + (d % 50 = 0) ELSE 0 END, {_outcome_case("o", 2)}
        FROM (SELECT n, {_pseudo_random("n", 2654435761)} AS a,
                        {_pseudo_random("n", 40503)} AS o,
                        {_pseudo_random("n", 2246822519)} AS d
              FROM ({numbers}) AS numbers) AS r
    """.replace("(d % 50 = 0)", "CASE WHEN d % 50 = 0 THEN 1 ELSE 0 END")


def _parts_sql(dialect: str) -> str:
    smsc_id = "to_hex(id)" if dialect == "postgresql" else "printf('%x', id)"
    return f"""
        INSERT INTO message_part (message_id, part_no, smsc_message_id, status, error_code,
                                  done_at)
        SELECT id, 1, {smsc_id}, status, error_code, done_at FROM message
        WHERE campaign_id = :campaign_id AND last_status = 0
    """


def fill(engine: Engine, count: int) -> int:
    """A completed campaign with `count` messages and their parts; return its id."""
    with Session(engine) as session:
        areas.seed(session)
        authority = create_authority(
            session=session, code="BENCH", name="Sở Thông tin và Truyền thông", areas=["64"]
        )
        submitter, _ = create_user(
            session=session,
            username="bench",
            name="Bench",
            role=Role.SUBMITTER,
            authority=authority,
        )
        campaign = Campaign(
            title="Phòng chống dịch nCoV",
            text="Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên",
            sender="GiaLai",
            target_areas=["64"],
            authority_id=authority.id or 0,
            created_by_id=submitter.id or 0,
            status=CampaignStatus.COMPLETED,
            recipients=count,
        )
        session.add(campaign)
        session.commit()
        campaign_id = campaign.id or 0
    dialect = engine.dialect.name
    parameters = {
        "campaign_id": campaign_id,
        "count": count,
        "start_us": int(START.timestamp() * 1_000_000),
    }
    with engine.begin() as connection:
        connection.execute(text(_fill_sql(dialect)), parameters)
        connection.execute(text(_parts_sql(dialect)), parameters)
    # What the databases do by themselves after a bulk change. PostgreSQL's autovacuum: the
    # statistics, and the visibility map that lets index-only scans skip the table. SQLite's
    # checkpoint: the pages written move from the write-ahead log into the database file. (No
    # ANALYZE on SQLite: the report names its indexes there.)
    if dialect == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE message, message_part"
            )
    else:  # outside any transaction, which the engine's connections always open
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    return campaign_id


@contextmanager
def _database(var_dir: Path) -> Iterator[str]:
    """A migrated scratch database: a fresh SQLite file, or a PostgreSQL schema of its own."""
    url = get_settings().database_url
    if url is None or make_url(url).get_backend_name() != "postgresql":
        var_dir.mkdir(parents=True, exist_ok=True)
        path = (var_dir / "report-bench.db").resolve()
        for stale in path.parent.glob(path.name + "*"):
            stale.unlink()
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        yield url
        return
    schema = f"report_bench_{os.getpid()}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    scoped_url = scoped.render_as_string(hide_password=False)
    try:
        migrate.upgrade(scoped_url)
        yield scoped_url
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(
    messages: Annotated[int, typer.Option(min=1, help="Messages in the campaign")] = 2_000_000,
    runs: Annotated[int, typer.Option(min=1, help="Times the report is computed")] = 3,
    export: Annotated[bool, typer.Option(help="Time the CSV export too")] = True,
    var_dir: Annotated[Path, typer.Option(help="Where the files go")] = Path("var/report-bench"),
) -> None:
    """Fill a campaign, time its report and its CSV export, print the peak memory."""
    console = Console()
    with _database(var_dir) as url:
        engine = make_engine(url)
        shown = engine.url.render_as_string(hide_password=True)
        console.print(f"[bold]Report benchmark[/]: {messages:,} messages in {shown}")
        started = time.perf_counter()
        campaign_id = fill(engine, messages)
        console.print(f"Filled in {time.perf_counter() - started:.1f} s (not counted below)")
        before = _peak_mb()
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            with Session(reading(engine)) as session:
                report = reports.compute(session=session, campaign_id=campaign_id)
            timings.append(time.perf_counter() - started)
        console.print(
            f"Report: best {min(timings):.2f} s, worst {max(timings):.2f} s of {runs} "
            f"({len(report.by_area)} areas, {len(report.by_hour)} hours, "
            f"p50 {report.delivery_seconds.p50} s, 99 % reached at {report.reached.p99})"
        )
        if not export:
            engine.dispose()
            return
        out = var_dir / "messages.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with out.open("w", encoding="utf-8", newline="") as file:
            rows = delivery_log.write(engine, campaign_id, file, masked=True)
        seconds = time.perf_counter() - started
        console.print(
            f"Export: {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s), "
            f"{out.stat().st_size / 1e6:,.0f} MB"
        )
        console.print(
            f"Peak memory of this process: {before:,.0f} MB before the export, "
            f"{_peak_mb():,.0f} MB after it"
        )
        engine.dispose()


if __name__ == "__main__":
    typer.run(main)
