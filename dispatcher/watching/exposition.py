"""How metrics leave a process, and who may read them.

Each worker serves its own engine metrics (`dispatcher.sending.metrics`) on
`DISPATCHER_METRICS_PORT`; the API serves, at `/metrics`, the figures read from the database and
Redis (queue depth, campaigns, messages in doubt, contracts), once for the whole deployment.
A worker's port answers only clients in `DISPATCHER_METRICS_NETWORKS`; the API's `/metrics`
also answers a bearer token of an operator or an admin.
"""

import ipaddress
import logging
import threading
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from dispatcher.settings import Settings
from dispatcher.watching.snapshot import Snapshot

log = logging.getLogger("dispatcher.watching")


def allowed(address: str | None, networks: Iterable[str]) -> bool:
    """Whether a client address lies in one of the networks (CIDR)."""
    if not address:
        return False
    try:
        client = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    for network in networks:
        try:
            if client in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            log.warning("DISPATCHER_METRICS_NETWORKS: %r is not a network", network)
    return False


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve_worker_metrics(settings: Settings) -> WSGIServer:
    """Serve this process's default registry on the metrics port, to the allowed networks only."""
    host, port, networks = (
        settings.metrics_host,
        settings.metrics_port or 0,
        settings.metrics_networks,
    )
    app = make_wsgi_app()

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not allowed(environ.get("REMOTE_ADDR"), networks):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"not from an allowed network (DISPATCHER_METRICS_NETWORKS)\n"]
        answer: Iterable[bytes] = app(environ, start_response)
        return answer

    server = make_server(
        host, port, guarded, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server


class SnapshotCollector:
    """The deployment-wide figures of one snapshot, as Prometheus metrics."""

    def __init__(self, snapshot: Snapshot, settings: Settings) -> None:
        self.snapshot = snapshot
        self.settings = settings

    def describe(self) -> list[Metric]:
        """Nothing up front: the families depend on the snapshot."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The families of the snapshot."""
        limit = GaugeMetricFamily(
            "dispatcher_account_rate_limit",
            "Contracted submits/s of the SMSC account, all binds together (0 = none)",
            labels=["account"],
        )
        for account in self.settings.binds:
            limit.add_metric([account.name], account.rate)
        yield limit
        yield from self._sources()
        database = self.snapshot.database
        if database is None:
            return
        depth = GaugeMetricFamily(
            "dispatcher_queue_depth",
            "Messages queued in sending campaigns, by lane",
            labels=["lane"],
        )
        for lane, count in database.lanes.items():
            depth.add_metric([lane], count)
        yield depth
        yield CounterMetricFamily(
            "dispatcher_in_doubt",
            "Messages ended `unknown` because nobody can know whether they were sent",
            value=database.in_doubt,
        )
        messages = GaugeMetricFamily(
            "dispatcher_campaign_messages",
            "Messages of each campaign not yet final, by status",
            labels=["campaign", "status"],
        )
        for campaign in database.campaigns:
            for status, count in sorted(campaign.counts.items()):
                messages.add_metric([str(campaign.id), status], count)
        yield messages

    def _sources(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dispatcher_watch_source_up",
            "1 if the source answered for this scrape",
            labels=["source"],
        )
        age = GaugeMetricFamily(
            "dispatcher_watch_age_seconds",
            "Age of the figures read from each source",
            labels=["source"],
        )
        for source, part in (("database", self.snapshot.database), ("redis", self.snapshot.redis)):
            up.add_metric([source], 0 if source in self.snapshot.problems else 1)
            if part is not None:
                age.add_metric([source], max(0.0, self.snapshot.taken_at - part.at))
        yield up
        yield age


def render(snapshot: Snapshot, settings: Settings) -> bytes:
    """The API's exposition: the snapshot's figures and the API process's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, settings))
    ProcessCollector(registry=registry)
    return generate_latest(registry)
