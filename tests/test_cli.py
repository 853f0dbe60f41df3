"""A fresh deployment through the command line: migrate, then register an authority."""

from typer.testing import CliRunner

from dispatcher.cli import app


def test_db_upgrade_loads_the_areas_an_authority_needs(settings_env: None) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert "39 built-in area records added" in first.output
    assert "0 built-in" in runner.invoke(app, ["db", "upgrade"]).output
    created = runner.invoke(
        app, ["authorities", "create", "STTTT-GL", "Sở TT&TT Gia Lai", "--area", "64"]
    )
    assert created.exit_code == 0, created.output
