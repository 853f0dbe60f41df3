"""Alembic environment: the URL comes from the dispatcher settings unless given explicitly."""

from alembic import context
from sqlmodel import SQLModel

import campaigns.models  # noqa: F401  (registers the tables)
from dispatcher.db import make_engine
from dispatcher.settings import get_settings

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    """Run migrations online against the configured database."""
    url = config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
