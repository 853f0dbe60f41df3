"""Prometheus metrics against a real campaign: worker and API processes, the simulator, SMPP.

The exposition is parsed with prometheus_client's own parser, and every figure is checked
against what the database and the simulator recorded.
"""

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from sqlalchemy import Engine, func, select

from campaigns.models import Message, MessagePart, MessageStatus, Role
from campaigns.people import create_user
from dispatcher import demo as flow
from dispatcher.db import make_engine, session_scope
from dispatcher.sending import metrics
from dispatcher.settings import Settings
from dispatcher.smsc.config import read_stats
from dispatcher.stack import Stack, StackConfig, free_port, wait_until
from dispatcher.watching.exposition import allowed, serve_worker_metrics
from tests import world

pytestmark = pytest.mark.timeout(240)
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Samples by name, each with its labels, from an exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(
        v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items())
    )


def scraper(url: str) -> Callable[[], Samples]:
    """Reads an exposition from `url` each time it is called."""
    return lambda: parse(httpx.get(url, timeout=5).raise_for_status().text)


def test_metrics_follow_a_throttled_campaign_through_a_dropped_bind(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    first, second = tmp_path / "smsc-1.json", tmp_path / "smsc-2.json"
    # The dispatcher's contract (300/s) is above what the SMSC allows (150/s): it is throttled.
    limit = ["--max-rate", "150", "--receipt-delay", "0.2"]
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        rate=300,
        receipt_timeout=5,
        worker_metrics=True,
        simulator_args=[*limit, "--stats-file", str(first)],
    )
    with Stack(config) as stack:
        worker = scraper(f"http://127.0.0.1:{stack.metrics_ports['worker']}/metrics")
        api_metrics = scraper(f"{stack.api_url}/metrics")
        seeded = flow.seed(database_url, 1500)
        with httpx.Client(base_url=stack.api_url, timeout=30) as api:
            campaign = str(flow.run_campaign(api, seeded))

            # Mid-campaign the API names it, with messages delivered and others still queued.
            def under_way() -> bool:
                now = api_metrics()
                return (
                    value(
                        now, "dispatcher_campaign_messages", campaign=campaign, status="delivered"
                    )
                    > 0
                    and value(now, "dispatcher_queue_depth", lane="normal") > 0
                )

            wait_until(under_way, 60, "a campaign under way in /metrics")
            assert value(worker(), "dispatcher_bind_up", account="smsc1", bind="smsc1#0") == 1

            # The SMSC goes away: the bind is down; it comes back: the bind is up again.
            stack.stop("smsc-sim")
            wait_until(lambda: value(worker(), "dispatcher_bind_up") == 0, 10, "bind down")
            simulator = ["--system-id", "dispatcher", "--password", "secret"]
            stack.spawn(
                "smsc-sim",
                ["smsc-sim", "--port", str(stack.smsc_port), *simulator, *limit]
                + ["--stats-file", str(second)],
            )
            wait_until(lambda: value(worker(), "dispatcher_bind_up") == 1, 30, "bind up again")
            body = flow.watch(
                stack, api, seeded.approver_token, int(campaign), 150, Console(quiet=True)
            )
        assert body["status"] == "completed"
        stack.stop("smsc-sim")
        delivered = body["by_status"].get("delivered", 0)
        engine = make_engine(database_url)
        with engine.connect() as connection:
            accepted = connection.execute(select(func.count()).select_from(MessagePart)).scalar()
            in_doubt = connection.execute(
                select(func.count())
                .select_from(Message)
                .where(Message.status == MessageStatus.UNKNOWN, Message.doubt.is_not(None))  # type: ignore[union-attr]
            ).scalar()
        engine.dispose()

        # The worker publishes once a second: wait for the last receipts to be counted, and
        # for the bind to be seen down (the SMSC was stopped again).
        def settled() -> bool:
            now = worker()
            return (
                value(now, "dispatcher_receipts_total", state="delivered") == delivered
                and value(now, "dispatcher_bind_up") == 0
            )

        wait_until(settled, 15, "every receipt counted and the bind down")
        ours, theirs = worker(), api_metrics()
        # The operator page shows the same: the throttled answers of the last minute, the bind.
        page = operator_page(stack, database_url)
        assert re.search(r'class="code">ESME_RTHROTTLED \d+', page)
        assert re.search(r'data-bind="smsc1#0">.*?state-down', page, re.DOTALL)

    smsc = [read_stats(first), read_stats(second)]
    ok = value(ours, "dispatcher_submits_total", command_status="ESME_ROK")
    throttled = value(ours, "dispatcher_submits_total", command_status="ESME_RTHROTTLED")
    assert ok == accepted  # one stored part per accepted submit_sm
    # What the SMSC accepted but never answered is in doubt (and so is what it never read).
    assert 0 <= sum(s.submits for s in smsc) - ok <= in_doubt <= 100
    assert throttled > 0 and value(ours, "dispatcher_throttled_total", account="smsc1") == throttled
    assert 0 <= sum(s.throttled for s in smsc) - throttled <= 100  # at most a window unanswered
    answered = sum(v for _, v in ours["dispatcher_submits_total"])
    assert value(ours, "dispatcher_submit_latency_seconds_count", account="smsc1") == answered
    assert value(ours, "dispatcher_delivery_latency_seconds_count") == delivered
    assert value(ours, "dispatcher_window_size", bind="smsc1#0") == 100
    assert 0 <= value(ours, "dispatcher_window_in_use", bind="smsc1#0") <= 100
    assert value(theirs, "dispatcher_account_rate_limit", account="smsc1") == 300
    assert value(theirs, "dispatcher_in_doubt_total") == in_doubt
    assert value(theirs, "dispatcher_queue_depth", lane="normal") == 0
    assert value(theirs, "dispatcher_queue_depth", lane="urgent") == 0
    # Completed campaigns leave the per-campaign figures: the label set stays bounded.
    assert not theirs.get("dispatcher_campaign_messages")
    for samples in (ours, theirs):
        for name, rows in samples.items():
            for labels, _ in rows:
                assert not any(re.search(r"\d{8,}", v) for v in labels.values()), (name, labels)


def operator_page(stack: Stack, database_url: str) -> str:
    """The live part of /ops, as an operator sees it."""
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        _, token = create_user(
            session=session, username="ops", name="Ops", role=Role.OPERATOR, authority=None
        )
    engine.dispose()
    with httpx.Client(base_url=stack.api_url, timeout=10) as browser:
        assert browser.post("/ops/sign-in", data={"token": token}).status_code == 303
        return browser.get("/ops/live").raise_for_status().text


def test_api_metrics_need_an_allowed_network_or_an_operator_token(
    client: TestClient, engine: Engine
) -> None:
    people = world.build(engine)
    # The test client's address ("testclient") is in no network.
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=people["submitter"]).status_code == 403
    assert client.get("/metrics", headers=people["auditor"]).status_code == 403
    for reader in ("operator", "admin"):
        answer = client.get("/metrics", headers=people[reader])
        assert answer.status_code == 200
        families = {f.name for f in text_string_to_metric_families(answer.text)}
        assert {"dispatcher_queue_depth", "dispatcher_in_doubt"} <= families


def test_a_worker_port_answers_only_the_allowed_networks() -> None:
    assert metrics.enabled()  # the engine's metrics are in this process's registry
    port = free_port()
    settings = Settings(metrics_port=port, metrics_networks=["10.0.0.0/8"])
    server = serve_worker_metrics(settings)
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 403
    finally:
        server.shutdown()
        server.server_close()
    port = free_port()
    server = serve_worker_metrics(Settings(metrics_port=port))
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 200
        assert "dispatcher_delivery_latency_seconds_count" in answer.text
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("address", "networks", "expected"),
    [
        ("127.0.0.1", ["127.0.0.1/32"], True),
        ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),
        ("::1", ["::1/128"], True),
        ("192.168.1.5", ["10.0.0.0/8", "172.16.0.0/12"], False),
        ("testclient", ["0.0.0.0/0"], False),
        (None, ["0.0.0.0/0"], False),
    ],
)
def test_allowed_networks(address: str | None, networks: list[str], expected: bool) -> None:
    assert allowed(address, networks) is expected
