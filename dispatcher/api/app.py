"""The HTTP API application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dispatcher import queue
from dispatcher.api import access_log, admin, areas, audit, campaigns, errors, recipients
from dispatcher.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the queue connection for the life of the app."""
    app.state.queue = await queue.connect(get_settings())
    try:
        yield
    finally:
        await app.state.queue.aclose()


def create_app() -> FastAPI:
    """Build the API."""
    app = FastAPI(title="Public-information SMS dispatcher", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    access_log.install()
    app.include_router(campaigns.router)
    app.include_router(audit.router)
    app.include_router(areas.router)
    app.include_router(admin.router)
    app.include_router(recipients.opt_out_router)
    app.include_router(recipients.list_router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
