"""The operator page `/ops` and the API's `/metrics`.

The page is rendered on the server (Jinja2) from the shared snapshot; without JavaScript it is
a complete snapshot of its own. With JavaScript it asks for its live part (`/ops/live`, the
same template) every second and says how old its figures are, turning visibly stale when they
stop coming or the API has lost the database or Redis. Pause, resume and cancel go through a
confirmation page, then through `campaigns.service` like the API's endpoints: same rules, same
audit, the workers told through Redis only after the change committed.
"""

import asyncio
import hmac
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from arq import ArqRedis
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from campaigns import service
from campaigns.errors import CampaignError
from campaigns.models import Campaign, User
from campaigns.tokens import user_by_token
from dispatcher import queue
from dispatcher.api import errors
from dispatcher.db import get_engine
from dispatcher.sending import halts
from dispatcher.settings import get_settings
from dispatcher.watching import exposition, signin
from dispatcher.watching.feed import SnapshotFeed
from dispatcher.watching.snapshot import Snapshot

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
static = StaticFiles(directory=HERE / "static")
Action = Literal["pause", "resume", "cancel"]
_DONE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}
# Pages carry form tokens: never cached, never framed (no clicking Cancel through a frame).
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'",
}


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Any:
    return templates.TemplateResponse(request, name, context, status_code=status, headers=_HEADERS)


def _feed(request: Request) -> SnapshotFeed:
    feed: SnapshotFeed = request.app.state.snapshot_feed
    return feed


def _sessions(request: Request) -> signin.Sessions:
    sessions: signin.Sessions = request.app.state.ops_sessions
    return sessions


async def _signed_in(request: Request) -> signin.SignedIn | None:
    cookie = request.cookies.get(signin.COOKIE)
    return await asyncio.to_thread(_sessions(request).check, cookie)


def _context(snapshot: Snapshot, **more: Any) -> dict[str, Any]:
    now = time.time()
    age = snapshot.age(now)
    known = age != float("inf")
    return {
        "snap": snapshot,
        "age": age,
        "known": known,
        "stale": snapshot.stale(now),
        "as_of": _clock(now - age) if known else "never",  # the older source's time
        "clock": _clock,
        "chart": chart(snapshot),
        **more,
    }


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


def chart(snapshot: Snapshot, width: int = 900, height: int = 150) -> dict[str, Any]:
    """Polyline points of submits/s and receipts/s over the last 15 minutes."""
    series = snapshot.redis.chart if snapshot.redis else []
    peak = max([1, *(max(s, r) for _, s, r in series)])
    step = width / max(1, len(series) - 1)

    def points(index: int) -> str:
        return " ".join(
            f"{i * step:.1f},{height - row[index] * height / peak:.1f}"
            for i, row in enumerate(series)
        )

    return {"submits": points(1), "receipts": points(2), "peak": peak, "w": width, "h": height}


@router.get("/ops", response_class=HTMLResponse)
async def ops_page(request: Request, done: str | None = None, campaign: int | None = None) -> Any:
    """The page, or the sign-in form."""
    signed = await _signed_in(request)
    if signed is None:
        return _render(request, "signin.html", {"error": None})
    snapshot = await _feed(request).current()
    note = f"Campaign {campaign} {done}." if done in _DONE.values() and campaign else None
    context = _context(snapshot, user=signed, note=note)
    return _render(request, "ops.html", context)


@router.get("/ops/live", response_class=HTMLResponse)
async def ops_live(request: Request) -> Any:
    """The live part of the page, for the page's script to swap in."""
    signed = await _signed_in(request)
    if signed is None:
        return Response("sign in again", status_code=401)
    snapshot = await _feed(request).current()
    return _render(request, "live.html", _context(snapshot, user=signed))


@router.post("/ops/sign-in", response_class=HTMLResponse)
def ops_sign_in(request: Request, token: Annotated[str, Form(max_length=200)]) -> Any:
    """Exchange an API token for the page's session cookie."""
    settings = get_settings()
    try:
        with Session(get_engine()) as session:
            cookie = signin.sign_in(session=session, token=token, hours=settings.ops_session_hours)
    except CampaignError as error:
        context = {"error": str(error)}
        return _render(request, "signin.html", context, 403)
    answer = RedirectResponse("/ops", status_code=303)
    answer.set_cookie(
        signin.COOKIE,
        cookie,
        max_age=int(settings.ops_session_hours * 3600),
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/ops/sign-out")
async def ops_sign_out(request: Request, csrf: Annotated[str, Form()] = "") -> Any:
    """Forget the session cookie."""
    signed = await _signed_in(request)
    if signed is not None and not _same(csrf, signed.csrf):
        return Response("the form has expired; reload the page", status_code=403)
    answer = RedirectResponse("/ops", status_code=303)
    answer.delete_cookie(signin.COOKIE, path="/ops")
    return answer


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@router.post("/ops/campaigns/{campaign_id}/{action}", response_class=HTMLResponse)
async def ops_action(
    request: Request,
    campaign_id: int,
    action: Action,
    csrf: Annotated[str, Form()] = "",
    confirmed: Annotated[str, Form()] = "",
) -> Any:
    """Pause, resume or cancel: first a confirmation page, then the change."""
    signed = await _signed_in(request)
    if signed is None:
        return RedirectResponse("/ops", status_code=303)
    if not _same(csrf, signed.csrf) or not _same_origin(request):
        return Response("the form has expired; reload the page", status_code=403)
    if confirmed != "yes":
        context = {"user": signed, "campaign_id": campaign_id, "action": action}
        context["title"] = await asyncio.to_thread(_title, campaign_id)
        return _render(request, "confirm.html", context)
    try:
        await _act(request.app.state.queue, signed.user_id, campaign_id, action)
    except CampaignError as error:
        code = next((s for k, s in errors.STATUS_BY_ERROR.items() if isinstance(error, k)), 409)
        return await _refused(request, signed, str(error), code)
    except errors.QUEUE_ERRORS:
        message = "Redis is not answering: nothing was changed; try again shortly."
        return await _refused(request, signed, message, 503)
    target = f"/ops?done={_DONE[action]}&campaign={campaign_id}"
    return RedirectResponse(target, status_code=303)


def _same_origin(request: Request) -> bool:
    """A browser posting from another site says so in Origin; ours posts from this one."""
    origin = request.headers.get("origin")
    return origin is None or origin.rstrip("/") == str(request.base_url).rstrip("/")


def _title(campaign_id: int) -> str:
    with Session(get_engine()) as session:
        campaign = session.get(Campaign, campaign_id)
        return campaign.title if campaign else ""


async def _refused(request: Request, signed: signin.SignedIn, message: str, code: int) -> Any:
    snapshot = await _feed(request).current()
    context = _context(snapshot, user=signed, note=None, error=message)
    return _render(request, "ops.html", context, code)


async def _act(pool: ArqRedis, user_id: int, campaign_id: int, action: Action) -> None:
    """The API's pause, resume or cancel: Redis checked, change committed, workers told."""
    await pool.ping()
    generation = await asyncio.to_thread(_change, user_id, campaign_id, action)
    namespace = get_settings().queue_name
    if action == "resume":
        await halts.release(pool, namespace, campaign_id)
        await queue.enqueue_expansion(pool, campaign_id, generation, None)
    else:
        await halts.halt(pool, namespace, campaign_id, _DONE[action])


def _change(user_id: int, campaign_id: int, action: Action) -> int:
    with Session(get_engine(), expire_on_commit=False) as session:
        actor = session.get(User, user_id)
        assert actor is not None
        campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
        change = {"pause": service.pause, "resume": service.resume, "cancel": service.cancel}
        change[action](session=session, campaign=campaign, actor=actor)
        session.commit()
        return campaign.generation


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition, to the allowed networks or an operator's or admin's token."""
    settings = get_settings()
    client = request.client.host if request.client else None
    if not exposition.allowed(client, settings.metrics_networks):
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        check = partial(_metrics_reader, token) if scheme.lower() == "bearer" else None
        if check is None or not await asyncio.to_thread(check):
            return Response(
                "an operator's or admin's bearer token, or an allowed network, is needed\n",
                status_code=401 if check is None else 403,
                headers={"WWW-Authenticate": "Bearer"},
            )
    snapshot = await _feed(request).current()
    body = exposition.render(snapshot, settings)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def _metrics_reader(token: str) -> bool:
    with Session(get_engine()) as session:
        user = user_by_token(session=session, token=token)
        return user is not None and user.role in signin.ROLES
