"""The deploy/ files against a real Prometheus scraping real API and worker processes.

Every expression of the Grafana dashboard is evaluated by Prometheus during a campaign, and the
compose scrape config passes `promtool check config`. Skipped where Prometheus is not
installed (Debian: `apt-get install prometheus`).
"""

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher import demo as flow
from dispatcher.stack import Stack, StackConfig, free_port, wait_until

pytestmark = pytest.mark.timeout(180)
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
DEPLOY = Path(__file__).parent.parent / "deploy"
if not (PROMETHEUS and PROMTOOL):
    pytest.skip("Prometheus is not installed", allow_module_level=True)


def test_the_compose_scrape_config_is_valid() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_dashboard_expression_answers_during_a_campaign(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    assert PROMETHEUS is not None
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        rate=300,
        workers=2,
        worker_metrics=True,
    )
    with Stack(config) as stack:
        workers = [f"127.0.0.1:{port}" for port in stack.metrics_ports.values()]
        scrape = tmp_path / "prometheus.yml"
        scrape.write_text(
            "global: {scrape_interval: 1s}\nscrape_configs:\n"
            f"  - {{job_name: api, static_configs: [{{targets: ['{stack.api_url[7:]}']}}]}}\n"
            f"  - {{job_name: workers, static_configs: [{{targets: {json.dumps(workers)}}}]}}\n"
        )
        address = f"127.0.0.1:{free_port()}"
        server = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={scrape}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={address}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def query(expression: str) -> list[dict[str, Any]]:
                answer = httpx.get(
                    f"http://{address}/api/v1/query", params={"query": expression}, timeout=5
                ).json()
                assert answer["status"] == "success", (expression, answer)
                result: list[dict[str, Any]] = answer["data"]["result"]
                return result

            seeded = flow.seed(database_url, 4000)
            with httpx.Client(base_url=stack.api_url, timeout=30) as api:
                flow.run_campaign(api, seeded)
                wait_until(lambda: _answers(query, "dispatcher_campaign_messages"), 60, "campaign")
                wait_until(
                    lambda: _answers(
                        query, 'sum(dispatcher_submits_total{command_status="ESME_ROK"}) > 100'
                    ),
                    60,
                    "submits",
                )
            dashboard = json.loads(
                (DEPLOY / "grafana" / "dashboards" / "dispatcher.json").read_text()
            )
            expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
            for expression in expressions:
                query(expression)  # every expression is valid PromQL over these metrics
            # Each worker binds when it starts and publishes once a second, and Prometheus
            # scrapes each target on its own second: the second bind may show a scrape later.
            wait_until(
                lambda: (
                    {r["metric"]["bind"] for r in query("dispatcher_bind_up == 1")}
                    == {"smsc1#0", "smsc1#1"}
                ),
                30,
                "both binds up",
            )
            assert [r["value"][1] for r in query("dispatcher_account_rate_limit")] == ["300"]
            assert all(r["value"][1] == "1" for r in query("up"))
            assert len(query("up")) == 3
        finally:
            server.terminate()
            server.wait(10)


def _answers(query: Any, expression: str) -> bool:
    try:
        return bool(query(expression))
    except (httpx.HTTPError, ValueError):  # not up yet, or not ready (a 503 in plain text)
        return False
