"""Sign-in to the operator page: an API token exchanged for an expiring session cookie.

The cookie is `token id.expiry.mac`, where the MAC is an HMAC-SHA256 keyed with the stored hash
of the token it was issued for: it needs no server secret, holds across API processes, and dies
with the token (revoking a user's tokens signs them out) or at its expiry. The form token that
guards every action (CSRF) is an HMAC of the cookie under the same key, so a page of another
site can neither read nor forge it; the cookie is also SameSite=Strict and HttpOnly.
Only `operator` and `admin` users may sign in. A session checked recently is trusted for
`TRUST_SECONDS` without the database, so the page keeps showing (stale) figures through a short
database outage.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from campaigns import tokens
from campaigns.errors import PermissionDenied
from campaigns.models import ApiToken, Role, User, utcnow
from campaigns.tokens import hash_token

COOKIE = "dispatcher_ops"
ROLES = (Role.OPERATOR, Role.ADMIN)
TRUST_SECONDS = 30.0


@dataclass(frozen=True)
class SignedIn:
    """Who is looking at the page, and the form token of their session."""

    user_id: int
    username: str
    name: str
    role: Role
    csrf: str
    expires: int

    @property
    def may_act(self) -> bool:
        """Operators pause, resume and cancel; admins only watch (the API's rules)."""
        return self.role == Role.OPERATOR


def _mac(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_in(*, session: Session, token: str, hours: float) -> str:
    """The cookie for a valid token of an operator or admin; PermissionDenied otherwise."""
    found = session.exec(
        select(ApiToken, User)
        .join(User, col(User.id) == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token.strip()))
        .where(col(ApiToken.revoked_at).is_(None))
    ).first()
    if found is None:
        raise PermissionDenied("that token is not valid")
    stored, user = found
    if tokens.expiry(stored) <= utcnow():
        raise PermissionDenied("that token has expired")
    if user.role not in ROLES:
        raise PermissionDenied("the operator page is for operators and admins")
    # The session ends no later than the token it was opened with.
    ends = min(time.time() + hours * 3600, tokens.expiry(stored).timestamp())
    payload = f"{stored.id}.{int(ends)}"
    return f"{payload}.{_mac(stored.token_hash, payload)}"


class Sessions:
    """Checks cookies, remembering the good ones for a short while."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._trusted: dict[str, tuple[SignedIn, float]] = {}

    def check(self, cookie: str | None) -> SignedIn | None:
        """Who the cookie signs in, or None if it is missing, forged, expired or revoked."""
        if not cookie:
            return None
        now = time.time()
        trusted = self._trusted.get(cookie)
        if trusted is not None and now - trusted[1] < TRUST_SECONDS:
            return trusted[0] if trusted[0].expires > now else None
        signed = self._load(cookie, now)
        if signed is None:
            self._trusted.pop(cookie, None)
            return None
        if len(self._trusted) > 1000:
            self._trusted.clear()
        self._trusted[cookie] = (signed, now)
        return signed

    def _load(self, cookie: str, now: float) -> SignedIn | None:
        try:
            token_id, expires, mac = cookie.split(".")
            token_key, expiry = int(token_id), int(expires)
        except ValueError:
            return None
        if expiry <= now:
            return None
        with Session(self._engine) as session:
            found = session.exec(
                select(ApiToken, User)
                .join(User, col(User.id) == ApiToken.user_id)
                .where(ApiToken.id == token_key, col(ApiToken.revoked_at).is_(None))
            ).first()
        if found is None:
            return None
        stored, user = found
        if not hmac.compare_digest(mac, _mac(stored.token_hash, f"{token_id}.{expires}")):
            return None
        if user.role not in ROLES or user.id is None:
            return None
        return SignedIn(
            user_id=user.id,
            username=user.username,
            name=user.name,
            role=user.role,
            csrf=_mac(stored.token_hash, f"csrf.{cookie}"),
            expires=expiry,
        )
