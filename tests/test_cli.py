"""A fresh deployment through the command line: migrate, then register an authority."""

import pytest
from typer.testing import CliRunner

from dispatcher.cli import app


def test_db_upgrade_loads_the_areas_an_authority_needs(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    from dispatcher.db import get_engine
    from dispatcher.settings import get_settings

    monkeypatch.setenv("DISPATCHER_DATABASE_URL", database_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    runner = CliRunner()
    try:
        first = runner.invoke(app, ["db", "upgrade"])
        assert first.exit_code == 0, first.output
        assert "39 built-in area records added" in first.output
        assert "0 built-in" in runner.invoke(app, ["db", "upgrade"]).output
        created = runner.invoke(
            app, ["authorities", "create", "STTTT-GL", "Sở TT&TT Gia Lai", "--area", "64"]
        )
        assert created.exit_code == 0, created.output
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()
