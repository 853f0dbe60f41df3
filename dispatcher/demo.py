"""The product's main job on one machine: a campaign submitted, approved, sent and tracked."""

import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from campaigns import areas
from campaigns.execution import count_by_status
from campaigns.models import PENDING_MESSAGE_STATUSES, Role
from campaigns.people import confirm_authority, create_authority, create_user
from campaigns.synthetic import insert_subscribers
from dispatcher.db import make_engine, session_scope
from dispatcher.stack import Stack

PENDING = [str(status) for status in PENDING_MESSAGE_STATUSES]
FINAL_CAMPAIGN_STATUSES = {"completed", "cancelled", "expired", "rejected"}
DEMO_TEXT = "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên phòng dịch nCoV"


@dataclass(frozen=True)
class Seeded:
    """Who the demo acts as."""

    submitter_token: str
    approver_token: str


SEEDER = "seed-demo"  # how the audit log names the deployment's bootstrap
# The demo's stand-in for the second operator admin, who confirms the authority it registered.
CONFIRMER = "seed-demo:second-admin"


def seed(database_url: str, subscribers: int) -> Seeded:
    """An authority with a submitter and an approver, the areas, and synthetic subscribers.

    As a deployment would: the operator side registers the authority and its first
    authority_admin, a second operator admin confirms the authority, and its authority_admin
    creates its submitter and approver; all audited.
    """
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        areas.seed_gia_lai(session)
        authority = create_authority(
            session=session,
            code="STTTT-GL",
            name="Sở Thông tin và Truyền thông Gia Lai",
            areas=[areas.GIA_LAI],
            actor=SEEDER,
        )
        steward, _ = create_user(
            session=session,
            username="chau.le",
            name="Lê Minh Châu",
            role=Role.AUTHORITY_ADMIN,
            authority=authority,
            actor=SEEDER,
        )
        confirm_authority(session=session, authority=authority, actor=CONFIRMER)
        _, submitter = create_user(
            session=session,
            username="an.nguyen",
            name="Nguyễn Văn An",
            role=Role.SUBMITTER,
            authority=authority,
            actor=steward,
        )
        _, approver = create_user(
            session=session,
            username="binh.tran",
            name="Trần Thị Bình",
            role=Role.APPROVER,
            authority=authority,
            actor=steward,
        )
        insert_subscribers(session=session, count=subscribers)
    engine.dispose()
    return Seeded(submitter, approver)


def run_campaign(
    api: httpx.Client,
    seeded: Seeded,
    text: str = DEMO_TEXT,
    target: list[str] | None = None,
    **fields: object,
) -> int:
    """Create, submit and approve a campaign through the HTTP API; return its id."""
    submitter = {"Authorization": f"Bearer {seeded.submitter_token}"}
    approver = {"Authorization": f"Bearer {seeded.approver_token}"}
    created = api.post(
        "/v1/campaigns",
        headers=submitter,
        json={
            "title": "Phòng chống dịch nCoV",
            "text": text,
            "sender": "GiaLai",
            "target_areas": target or [areas.GIA_LAI],
            "document_number": "05/CT-BTTTT",
            "document_date": "2020-02-02",
            "document_issuer": "Bộ Thông tin và Truyền thông",
            **fields,
        },
    )
    _check(created)
    campaign_id: int = created.json()["id"]
    _check(api.post(f"/v1/campaigns/{campaign_id}/submit", headers=submitter))
    content_hash = created.json()["content_hash"]
    _check(
        api.post(
            f"/v1/campaigns/{campaign_id}/approve",
            headers=approver,
            json={"content_hash": content_hash},
        )
    )
    return campaign_id


def _check(answer: httpx.Response) -> None:
    if answer.is_error:
        raise RuntimeError(f"{answer.request.method} {answer.request.url.path}: {answer.text}")


def report(api: httpx.Client, token: str, campaign_id: int) -> dict[str, Any]:
    """The campaign's report from the API."""
    answer = api.get(
        f"/v1/campaigns/{campaign_id}/report", headers={"Authorization": f"Bearer {token}"}
    )
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def watch(
    stack: Stack,
    api: httpx.Client,
    token: str,
    campaign_id: int,
    timeout: float,
    console: Console,
    stall: float = 180.0,
) -> dict[str, Any]:
    """Show live progress until the campaign reaches a final state; return the last report.

    Gives up after `timeout` seconds, or after `stall` seconds without any progress (an SMSC
    that refuses the bind, say), pointing at the logs.
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>9,.0f}/{task.fields[recipients]}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("sending", total=None, recipients="?", detail="expanding…")
        started = last_change = time.monotonic()
        last_seen: tuple[int, int] = (-1, -1)
        while True:
            stack.check_alive()
            body = report(api, token, campaign_id)
            counts = body["by_status"]
            pending = sum(counts.get(status, 0) for status in PENDING)
            done = sum(counts.values()) - pending
            submitted = sum(counts.values()) - counts.get("queued", 0) - counts.get("submitting", 0)
            failed = done - counts.get("delivered", 0)
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task,
                total=body["recipients"] or None,
                recipients=f"{body['recipients']:,}",
                completed=done,
                detail=f"submitted {submitted}  delivered {counts.get('delivered', 0)}  "
                f"failed {failed}  {done / elapsed:,.0f} msg/s",
            )
            if body["status"] in FINAL_CAMPAIGN_STATUSES:
                return body
            if (submitted, done) != last_seen:
                last_seen, last_change = (submitted, done), time.monotonic()
            if elapsed > timeout or time.monotonic() - last_change > stall:
                raise TimeoutError(
                    f"campaign {campaign_id} not finished after {elapsed:.0f}s "
                    f"({submitted} submitted, {done} final); see {stack.logs}/worker.log"
                )
            time.sleep(0.25)


def print_preview(console: Console, api: httpx.Client, token: str, campaign_id: int) -> None:
    """What the approver saw: the text, its encoding and what it costs."""
    answer = api.get(
        f"/v1/campaigns/{campaign_id}/preview", headers={"Authorization": f"Bearer {token}"}
    )
    _check(answer)
    preview = answer.json()
    sent, plain = preview["sent"], preview["unaccented_alternative"]
    console.print(f"Text: [italic]{sent['text']}[/]")
    console.print(
        f"Encoding {sent['encoding'].upper()}, {sent['characters']} characters, "
        f"{sent['segments']} SMS per message; {preview['recipients']:,} recipients, "
        f"{preview['total_sms']:,} SMS in all (unaccented it would be "
        f"{plain['encoding'].upper()}, {plain['segments']} SMS per message)"
    )


def print_report(console: Console, body: dict[str, Any]) -> None:
    """The final report as a table."""
    label = " (EXERCISE)" if body["exercise"] else ""
    table = Table(
        title=f"Campaign {body['campaign_id']}{label}: {body['status']}",
        caption=f"{body['encoding'].upper()}, {body['parts_per_message']} SMS per message, "
        f"{body['total_sms']:,} SMS in all",
        min_width=50,
    )
    table.add_column("status")
    table.add_column("messages", justify="right")
    for status, count in sorted(body["by_status"].items()):
        table.add_row(status, f"{count:,}")
    table.add_row("[bold]total", f"[bold]{sum(body['by_status'].values()):,}")
    console.print(table)


def count_pending(database_url: str, campaign_id: int) -> int:
    """Messages of the campaign not yet in a final state, read straight from the database."""
    engine = make_engine(database_url)
    with Session(engine) as session:
        counts = count_by_status(session=session, campaign_id=campaign_id)
    engine.dispose()
    return sum(counts.get(status, 0) for status in PENDING)
