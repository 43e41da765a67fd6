"""`--provider oci` as the autoscaler builds it, against the OKE emulator: the catalog comes
from the emulator's ListShapes and price list (not the built-in file), and a price change
there changes the next offer. Also the emulator's catalog APIs on their own: paged as OCI
pages them."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gibbous.autoscaler.cloud.okelive import FollowingPoolProvider
from gibbous.autoscaler.metrics import AutoscalerMetrics
from gibbous.autoscaler.providers.oke import PROVIDER
from gibbous.cli import build_parser
from gibbous.core.choice.catalog import InstanceType
from gibbous.devcluster.oci.catalogapis import OciCatalogApis
from gibbous.devcluster.oci.emulator import OkeEmulator, emulator_identity
from gibbous.devcluster.oci.state import CLUSTER, COMPARTMENT, SUBNET
from tests.factories import config

GIB = 1024**3


@pytest.fixture
def emulated(tmp_path: Path) -> Iterator[tuple[OkeEmulator, str, Path]]:
    sdk_config, public = emulator_identity()
    emulator = OkeEmulator(public_key=public)
    server = emulator.serve()
    key = tmp_path / "key.pem"
    key.write_text(sdk_config.pop("key_content"))
    config_file = tmp_path / "oci-config"
    config_file.write_text(
        "[DEFAULT]\n" + "".join(f"{k}={v}\n" for k, v in {**sdk_config, "key_file": key}.items())
    )
    yield emulator, f"http://127.0.0.1:{server.server_address[1]}", config_file
    server.shutdown()
    server.server_close()


def test_the_catalog_comes_from_the_apis_and_follows_a_price_change(
    emulated: tuple[OkeEmulator, str, Path], tmp_path: Path
) -> None:
    emulator, endpoint, config_file = emulated
    cache = tmp_path / "cache"
    args = build_parser().parse_args(
        [
            "autoscaler",
            "--provider",
            "oci",
            f"--oci-endpoint={endpoint}",
            f"--oci-config={config_file}",
            "--catalog-cache",
            str(cache),
        ]
    )
    settings = config(
        clusterID="dev-cluster",
        cloudProvider="oci",
        region="us-ashburn-1",
        oci={"compartmentId": COMPARTMENT, "clusterId": CLUSTER, "subnetId": SUBNET},
    )
    started = PROVIDER.build(args, settings, [], None)  # no built-in rows at all
    oke = started.provider
    assert isinstance(oke, FollowingPoolProvider)
    feed = oke.feed
    assert feed is not None
    assert feed.source == "api"
    assert (cache / "oci-us-ashburn-1.json").exists()
    metrics = AutoscalerMetrics()
    for collector in started.collectors:
        metrics.registry.register(collector)
    assert (
        metrics.registry.get_sample_value(
            "gibbous_catalog_age_seconds",
            {"cloud": "oci", "region": "us-ashburn-1", "source": "api"},
        )
        is not None
    )
    types = {t.name: t for t in oke.instance_types()}
    # The built-in catalog's E4 prices as the price list serves them: $0.025 an OCPU-hour,
    # $0.0015 a GB-hour; 4 OCPUs and 32 GB: 0.1 + 0.048.
    e4 = types["VM.Standard.E4.Flex-4-32"]
    assert (e4.vcpu, e4.memory_bytes, e4.on_demand_price) == (8, 32 * GIB, 0.148)
    assert e4.zones  # the availability domains, as OKE labels nodes
    # BM.GPU4.8: 8 A100 at $3.05 an hour each.
    assert (types["BM.GPU4.8"].gpu_count, types["BM.GPU4.8"].on_demand_price) == (8, 24.4)
    # 8 vCPUs and 32 GB: E4 $0.148, E5 (0.03 x 4 + 0.002 x 32) $0.184, Standard3 $0.208.
    assert types["VM.Standard.E5.Flex-4-32"].on_demand_price == 0.184
    same_size = [t for t in types.values() if t.vcpu == 8 and t.memory_bytes == 32 * GIB]
    assert min(same_size, key=lambda t: t.on_demand_price).name == "VM.Standard.E4.Flex-4-32"

    request = urllib.request.Request(
        f"{endpoint}/emulator/prices", data=json.dumps({"B97384": 0.001}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    later = time.time() + 6 * 3600
    feed.clock = lambda: later
    oke.instance_types()  # starts the refresh beside the caller
    feed.wait(30)
    types = {t.name: t for t in oke.instance_types()}
    # E5's OCPU part (B97384) at $0.001: 4 x 0.001 + 32 x 0.002
    assert types["VM.Standard.E5.Flex-4-32"].on_demand_price == 0.068
    same_size = [t for t in types.values() if t.vcpu == 8 and t.memory_bytes == 32 * GIB]
    assert min(same_size, key=lambda t: t.on_demand_price).name == "VM.Standard.E5.Flex-4-32"
    assert any(method == "GET" and path == "/20160918/shapes" for method, path in emulator.requests)


def row(
    name: str, vcpu: float, gb: int, usd: float, *, gpus: int = 0, sku: str = ""
) -> InstanceType:
    return InstanceType(
        cloud="oci",
        region="us-ashburn-1",
        name=name,
        family="x",
        vcpu=vcpu,
        memory_bytes=gb * GIB,
        gpu_count=gpus,
        gpu_sku=sku,
        gpu_memory_bytes=0,
        arch="amd64",
        on_demand_price=usd,
        spot_price=None,
    )


ROWS = [
    row("VM.Standard.E4.Flex-1-8", 2, 8, 0.037),
    row("VM.Standard.E4.Flex-1-16", 2, 16, 0.049),
    row("VM.Standard.E4.Flex-2-16", 4, 16, 0.074),
    row("BM.Standard.E4.128", 256, 2048, 6.272),
    row("BM.GPU3.8", 104, 768, 23.6, gpus=8, sku="V100"),
    row("VM.GPU3.1", 12, 90, 2.95, gpus=1, sku="V100"),
]


def test_list_shapes_pages_with_opc_next_page() -> None:
    apis = OciCatalogApis(ROWS)
    query: dict[str, Any] = {"compartmentId": [COMPARTMENT], "limit": ["2"]}
    first, headers = apis.list_shapes(query)
    assert [s["shape"] for s in first] == ["BM.GPU3.8", "BM.Standard.E4.128"]
    second, more = apis.list_shapes({**query, "page": [headers["opc-next-page"]]})
    assert [s["shape"] for s in second] == ["VM.GPU3.1", "VM.Standard.E4.Flex"]
    assert more == {}
    flex = second[1]
    # OCI's "Compute Shapes": E4 Flex up to 64 OCPUs, 1024 GB, 64 GB an OCPU.
    assert (flex["isFlexible"], flex["ocpuOptions"]["max"], flex["memoryOptions"]["maxInGBs"]) == (
        True,
        64.0,
        1024.0,
    )
    bm = first[0]
    assert (bm["ocpus"], bm["memoryInGBs"], bm["gpus"], bm["gpuDescription"]) == (
        52.0,
        768.0,
        8,
        "NVIDIA® Tesla® V100",
    )


def test_the_price_list_reads_the_catalogs_prices_back_and_pages_when_asked() -> None:
    apis = OciCatalogApis(ROWS)
    whole = apis.price_list({"currencyCode": ["USD"]})
    prices = {
        i["partNumber"]: i["currencyCodeLocalizations"][0]["prices"][0]["value"]
        for i in whole["items"]
    }
    # E4: (0.049 - 0.037) / 8 = 0.0015 a GB, 0.037 - 8 x 0.0015 = 0.025 an OCPU; V100 2.95.
    assert prices == {"B93113": 0.025, "B93114": 0.0015, "B88517": 2.95}
    first = apis.price_list({"currencyCode": ["USD"], "limit": ["2"]})
    assert first["hasMore"] is True
    assert first["links"][0]["rel"] == "next"
    assert "offset=2" in first["links"][0]["href"]
    apis.set_price("B93113", 0.5)
    last = apis.price_list({"currencyCode": ["USD"], "limit": ["2"], "offset": ["2"]})
    assert last["hasMore"] is False
    changed = apis.price_list({"currencyCode": ["USD"]})["items"][0]
    assert changed["currencyCodeLocalizations"][0]["prices"][0]["value"] == 0.5
