"""One error shape for every error: `{"error": {"code": ..., "message": ...}}`."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from campaigns.errors import CampaignError, InvalidInput, InvalidState, NotFound, PermissionDenied


class Unauthorized(Exception):
    """No valid token came with the request."""


STATUS_BY_ERROR: dict[type[CampaignError], int] = {
    NotFound: 404,
    PermissionDenied: 403,
    InvalidState: 409,
    InvalidInput: 422,
}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The body of every error answer."""
    return {"error": {"code": code, "message": message}}


def install(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to the one error shape."""

    @app.exception_handler(CampaignError)
    async def campaign_error(_: Request, exc: CampaignError) -> JSONResponse:
        status = next((s for t, s in STATUS_BY_ERROR.items() if isinstance(exc, t)), 400)
        return JSONResponse(error_body(exc.code, str(exc)), status_code=status)

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            error_body("unauthorized", str(exc)),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(error_body("invalid_input", details), status_code=422)

    @app.exception_handler(IntegrityError)
    async def conflict(_: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced for the same unique value; the check before the insert passed both.
        return JSONResponse(
            error_body("conflict", "it already exists (a concurrent request made it)"),
            status_code=409,
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(f"http_{exc.status_code}", str(exc.detail)), status_code=exc.status_code
        )
