"""The report benchmark, small: it fills a campaign, reports on it and exports it."""

from pathlib import Path

import pytest

from dispatcher import report_bench


def test_the_report_benchmark_runs_small(
    tmp_path: Path, settings_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    report_bench.main(messages=3000, runs=1, export=True, var_dir=tmp_path)
    printed = " ".join(capsys.readouterr().out.split())
    assert "Report: best" in printed and "17 areas" in printed
    assert "Export: 3,000 rows" in printed
    with (tmp_path / "messages.csv").open(encoding="utf-8") as log:
        assert sum(1 for _ in log) == 3001
