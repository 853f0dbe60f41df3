"""What a request may be before any work is done on it: its size, its pace, its characters.

An ASGI middleware in front of routing and authentication:

- a body larger than the limit is refused with 413, from its `Content-Length` before anything
  is read, or as soon as the bytes read pass the limit (chunked bodies). Recipient-list uploads
  have a limit of their own (`max_upload_bytes`), every other request `max_request_bytes`.
- a body whose next chunk does not arrive within `body_read_timeout` seconds is refused with 408.
- a path, query or JSON body holding a control character (NUL and the other C0 and C1 controls;
  in JSON strings tab, line feed and carriage return are allowed) or a lone surrogate is refused
  with 422. JSON bodies are read in full (they are at most `max_request_bytes`) and checked
  before the app sees them.

Every refusal has the API's error shape.
"""

import asyncio
import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.errors import error_body

UPLOAD_PATHS = frozenset({"/v1/recipient-lists"})
"""Where a multipart upload may take `max_upload_bytes`."""
TEXT_CONTROLS = frozenset("\t\n\r")
_LENGTH = re.compile(r"[0-9]{1,18}")
"""Controls a JSON string may hold: multi-line text is legitimate."""


class RequestTooLarge(HTTPException):
    """The body passed the limit while the app was reading it."""

    code = "too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class RequestTimeout(HTTPException):
    """The client stopped sending its body."""

    code = "timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"no part of the request body arrived within {seconds:g} s")


class TooManyRows(HTTPException):
    """An upload holds more rows than allowed."""

    code = "too_large"

    def __init__(self, most: int) -> None:
        super().__init__(413, f"the upload holds more than {most} rows")


def forbidden_character(value: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first control character or lone surrogate in `value`, outside `allowed`."""
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string of a decoded JSON document (keys included), with where it is."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}.{index}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{where} (a key)", key
            yield from _strings(item, f"{where}.{key}")


def _bad_json(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the app answers that
    for where, text in _strings(document, "body"):
        if (ch := forbidden_character(text, TEXT_CONTROLS)) is not None:
            return f"{where}: control character U+{ord(ch):04X} is not allowed"
    return None


def _bad_target(scope: Scope) -> str | None:
    values = [("path", scope["path"])]  # the server decoded it already
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        values += [(f"query {name!r}", name), (f"query {name!r}", value)]
    for where, text in values:
        if (ch := forbidden_character(text)) is not None:
            return f"{where}: control character U+{ord(ch):04X} is not allowed"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestLimits:
    """The middleware; see the module's docstring."""

    def __init__(
        self, app: ASGIApp, *, max_body: int, max_upload: int, read_timeout: float
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        self.read_timeout = read_timeout

    def _limit(self, scope: Scope) -> int:
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") in UPLOAD_PATHS
        return self.max_upload if upload else self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or pass on one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (problem := _bad_target(scope)) is not None:
            await _refuse(scope, receive, send, 422, "invalid_input", problem)
            return
        limit = self._limit(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and not _LENGTH.fullmatch(declared):
            await _refuse(scope, receive, send, 400, "bad_request", "invalid Content-Length")
            return
        if declared is not None and int(declared) > limit:
            await _refuse(scope, receive, send, 413, "too_large", RequestTooLarge(limit).detail)
            return
        reader = _Reader(receive, limit, self.read_timeout)
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                body = await reader.read_all()
            except (RequestTooLarge, RequestTimeout) as refused:
                status, code, detail = refused.status_code, refused.code, refused.detail
                await _refuse(scope, receive, send, status, code, detail)
                return
            if (problem := _bad_json(body)) is not None:
                await _refuse(scope, receive, send, 422, "invalid_input", problem)
                return
            receive = _replay(body, receive)
        else:
            receive = reader
        await self.app(scope, receive, send)


class _Reader:
    """`receive`, counting the body's bytes against the limit and timing each chunk."""

    def __init__(self, receive: Receive, limit: int, timeout: float) -> None:
        self._receive = receive
        self._limit = limit
        self._timeout = timeout
        self._read = 0

    async def __call__(self) -> Message:
        try:
            message = await asyncio.wait_for(self._receive(), self._timeout)
        except TimeoutError:
            raise RequestTimeout(self._timeout) from None
        if message["type"] == "http.request":
            self._read += len(message.get("body", b""))
            if self._read > self._limit:
                raise RequestTooLarge(self._limit)
        return message

    async def read_all(self) -> bytes:
        """The whole body."""
        chunks: list[bytes] = []
        while True:
            message = await self()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then what the client does next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
) -> None:
    headers = {"Connection": "close"} if status in (408, 413) else None
    response = JSONResponse(error_body(code, message), status_code=status, headers=headers)
    await response(scope, receive, send)
