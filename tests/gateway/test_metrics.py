"""Gateway metrics: every drop, the spool's and a destination's, is one labelled counter
family on /metrics, read from the spool's drop ledger."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mcptool.gateway.metrics import GatewayMetrics
from mcptool.gateway.spool import Dropped, Spool


def samples(metrics: GatewayMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_spool_and_destination_drops_are_counted_by_device_place_and_reason(
    tmp_path: Path,
) -> None:
    metrics = GatewayMetrics()
    async with Spool(tmp_path / "s.db", sinks=["uplink"], policy="drop_newest") as spool:
        metrics.watch(spool, lambda: [])
        assert samples(metrics, "mcptool_gateway_dropped_readings_total") == {}
        spool.max_readings = 0
        spool.append("d0", spool.reserve("d0", 3), 3, 1.0, b"{}")  # refused: spool full
        spool.report_drop(Dropped("d1", 4, 5, "uplink: too big", "uplink", "over_frame"))
        counted = samples(metrics, "mcptool_gateway_dropped_readings_total")
    assert counted == {
        (("device", "d0"), ("reason", "spool_full"), ("where", "spool")): 3.0,
        (("device", "d1"), ("reason", "over_frame"), ("where", "uplink")): 2.0,
    }
    # the limit policy's own total is unchanged by a destination's drops
    assert samples(metrics, "mcptool_gateway_spool_dropped_readings_total") == {(): 3.0}
