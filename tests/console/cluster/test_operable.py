"""A node as operators see it: /readyz with Redis, /metrics and who may read it, JSON logs."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deskside.console.cluster.settings import ClusterSettings
from deskside.console.config import ConsoleConfig
from deskside.console.metrics import MetricsSettings
from deskside.protocol.errors import ConfigError
from tests.console.commands.test_routes import PlayedAgent
from tests.console.test_server import enroll
from tests.consoleproc import ConsoleProcess
from tests.postgres import create_database
from tests.redisserver import RedisServer

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def node(tmp_path: Path, postgres_url: str, redis: RedisServer) -> Iterator[ConsoleProcess]:
    console = ConsoleProcess(
        tmp_path / "node",
        database_url=create_database(postgres_url),
        env={"DESKSIDE_REDIS_URL": redis.url, "DESKSIDE_NODE_ID": "node-one"},
    )
    with (console.data_dir / "console.toml").open("a") as config:
        config.write(
            '\n[metrics]\nallow = ["10.9.0.0/16"]\n'
            f'token = "{TOKEN}"\n\n[logging]\nformat = "json"\n'
        )
    with console:
        yield console


def get(console: ConsoleProcess, path: str, **headers: str) -> httpx.Response:
    with httpx.Client(verify=console.ssl_context(), timeout=10.0) as client:
        return client.get(f"{console.base_url}{path}", headers=headers)


async def test_readyz_says_so_while_redis_is_away(node: ConsoleProcess, redis: RedisServer) -> None:
    assert get(node, "/readyz").status_code == 200
    redis.stop()
    response = get(node, "/readyz")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("redis:")
    assert get(node, "/healthz").status_code == 200  # alive, only not ready
    redis.start()
    for _ in range(100):
        if get(node, "/readyz").status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert get(node, "/readyz").json() == {"status": "ready"}


async def test_metrics_count_agents_and_messages_for_whom_may_read_them(
    node: ConsoleProcess,
) -> None:
    refused = get(node, "/metrics")  # 127.0.0.1 is not among this node's allowed networks
    assert refused.status_code == 403
    assert "deskside_" not in refused.text
    assert get(node, "/metrics", Authorization="Bearer wrong-token-0123456789").status_code == 403
    key, channel = await enroll(node, host="metered-pc")
    agent = PlayedAgent(key, channel)
    try:
        text = ""
        for _ in range(100):
            response = get(node, "/metrics", Authorization=f"Bearer {TOKEN}")
            assert response.status_code == 200
            text = response.text
            if "deskside_agents_connected 1.0" in text:
                break
            await asyncio.sleep(0.1)
        samples = _samples(text)
        assert samples["deskside_agents_connected"] == 1.0
        assert samples['deskside_agent_messages_total{type="Hello"}'] == 1.0
        assert samples['deskside_agent_received_bytes_total{type="Hello"}'] > 0
        assert samples["deskside_agent_sent_bytes_total"] > 0
        assert samples["deskside_redis_up"] == 1.0
        assert samples["deskside_database_latency_seconds_count"] >= 1
        assert samples["deskside_redis_latency_seconds_count"] >= 1
        assert samples["deskside_commands_running"] == 0.0
        assert "deskside_bus_subscriptions" in samples
        assert "deskside_outbox_depth" not in text  # nobody feeds it yet: not made up
    finally:
        await agent.close()


async def test_logs_are_json_lines_without_secrets(node: ConsoleProcess) -> None:
    key, channel = await enroll(node, host="logged-pc")
    await PlayedAgent(key, channel).close()
    node.stop()
    lines = [line for line in node.log.read_text().splitlines() if line.strip()]
    assert lines
    assert not [line for line in lines if not line.startswith("{")], "\n".join(lines)
    entries = [json.loads(line) for line in lines]
    assert {e["node"] for e in entries} == {"node-one"}
    assert any("of a cluster" in e["message"] for e in entries)
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert TOKEN not in node.log.read_text()


def test_metrics_are_for_this_machine_unless_configured() -> None:
    default = MetricsSettings()
    assert default.permits("127.0.0.1", None)
    assert default.permits("::1", None)
    assert not default.permits("203.0.113.9", None)
    assert not default.permits(None, None)
    assert not default.permits("not an address", "Bearer ")
    wider = MetricsSettings.from_toml({"metrics": {"allow": ["10.0.0.0/8"]}}, {})
    assert wider.permits("10.1.2.3", None)
    assert wider.permits("::ffff:10.1.2.3", None)
    assert not wider.permits("127.0.0.1", None)
    token = MetricsSettings.from_toml({}, {"DESKSIDE_METRICS_TOKEN": TOKEN})
    assert token.permits("203.0.113.9", f"Bearer {TOKEN}")
    assert not token.permits("203.0.113.9", f"Bearer {TOKEN}x")
    assert not token.permits("203.0.113.9", f"Basic {TOKEN}")
    assert token.allow == tuple(ipaddress.ip_network(n) for n in ("127.0.0.1/32", "::1/128"))


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('[metrics]\nallow = ["not a network"]', "metrics.allow"),
        ('[metrics]\nallow = "10.0.0.0/8"', "metrics.allow"),
        ('[metrics]\ntoken = "short"', "at least 16"),
        ("[metrics]\nopen = true", "unknown setting metrics.open"),
        ('[cluster]\nredis_url = "http://x"', "redis://"),
        ("[cluster]\nclaim_ttl = 0.1", "claim_ttl"),
        ('[cluster]\nclaim_ttl = "5"', "must be a number"),
        ("[cluster]\nnodes = 3", "unknown setting cluster.nodes"),
        ('[logging]\nformat = "xml"', "logging.format"),
        ('[cluster]\nredis_url = "redis://127.0.0.1:1/0"', "PostgreSQL"),
    ],
)
def test_bad_settings_are_refused_clearly(tmp_path: Path, table: str, error: str) -> None:
    (tmp_path / "console.toml").write_text(f"[server]\nport = 8443\n\n{table}\n")
    with pytest.raises(ConfigError, match=error):
        ConsoleConfig.load(tmp_path, env={})


def test_cluster_settings_come_from_the_environment_and_hide_passwords(tmp_path: Path) -> None:
    (tmp_path / "console.toml").write_text(
        '[database]\nurl = "postgresql://u@db/deskside"\n[cluster]\nclaim_ttl = 3\n'
    )
    config = ConsoleConfig.load(
        tmp_path,
        env={"DESKSIDE_REDIS_URL": "redis://:s3cret@redis.lan:6379/0", "DESKSIDE_NODE_ID": "n1"},
    )
    assert config.cluster.enabled
    assert (config.cluster.node_id, config.cluster.claim_ttl) == ("n1", 3.0)
    assert config.cluster.safe_url() == "redis://:***@redis.lan:6379/0"
    assert not ClusterSettings().enabled  # no Redis: one node, as before
    assert ClusterSettings().node_id != ClusterSettings().node_id


def _samples(text: str) -> dict[str, float]:
    """Each sample of a scrape by its name and labels as Prometheus writes them."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_a_single_node_without_redis_serves_metrics_to_this_machine(
    console: ConsoleProcess,
) -> None:
    response = get(console, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(response.text)
    assert samples["deskside_agents_connected"] == 0.0
    assert "deskside_redis_up" not in samples  # no Redis here
    assert get(console, "/readyz").json() == {"status": "ready"}
    lines = console.log.read_text().splitlines()
    assert lines
    assert not lines[0].startswith("{")  # text, as before
