"""`aws.useSpotAdvisor` without a file: the autoscaler fetches the advisor's JSON itself.

Expected prices are P04's: Luna, with the advisor on, priced g6.8xlarge spot at $0.9871/hr
against $2.0144/hr on demand (a 51 % saving: 2.0144 x 0.49 = 0.987056)."""

from __future__ import annotations

import datetime
import http.server
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gibbous.autoscaler.cloud import spotadvisor
from gibbous.autoscaler.cloud.aws import AwsCloudProvider
from gibbous.autoscaler.cloud.spotadvisor import SpotAdvisorFeed, fetch_url
from gibbous.core.settings.loader import build_config
from tests.factories import catalog

# The advisor document's shape (spot-advisor-data.json): per region and OS, per type, `s`
# the saving in percent and `r` the interruption range's index.
DOCUMENT = {
    "instance_types": {"g6.8xlarge": {"cores": 32, "ram_gb": 128.0, "emr": False}},
    "ranges": [{"index": 0, "label": "<5%"}, {"index": 1, "label": "5-10%"}],
    "spot_advisor": {"us-west-2": {"Linux": {"g6.8xlarge": {"s": 51, "r": 1}}}},
}
URL = "https://advisor.example/spot-advisor-data.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Fetches:
    """The network: answers or failures, in order; counts the calls."""

    def __init__(self, *answers: bytes | Exception) -> None:
        self.answers = list(answers)
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class LiveSpotPrices:
    """ec2:DescribeSpotPriceHistory, the provider's fallback: g6.8xlarge at $0.80 in every
    zone it is asked about."""

    def __init__(self) -> None:
        self.calls = 0

    def get_paginator(self, name: str) -> Any:
        assert name == "describe_spot_price_history"
        outer = self

        class Pages:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                outer.calls += 1
                stamp = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
                yield {
                    "SpotPriceHistory": [
                        {
                            "InstanceType": "g6.8xlarge",
                            "AvailabilityZone": "us-west-2a",
                            "SpotPrice": "0.800000",
                            "Timestamp": stamp,
                        }
                    ]
                    if "g6.8xlarge" in kwargs["InstanceTypes"]
                    else []
                }

        return Pages()


def provider(feed: SpotAdvisorFeed, ec2: Any = None) -> AwsCloudProvider:
    config = build_config({"aws": {"useSpotAdvisor": True}})
    return AwsCloudProvider(
        ec2=ec2,
        catalog=catalog("aws"),
        clock=feed.clock,
        config=config.aws,
        advisor_feed=feed,
    )


def spot_price(aws: AwsCloudProvider, name: str) -> float | None:
    return next(t.spot_price for t in aws.instance_types() if t.name == name)


def test_the_advisors_saving_prices_spot_as_luna_did_in_p04() -> None:
    clock, fetches = Clock(), Fetches(json.dumps(DOCUMENT).encode())
    feed = SpotAdvisorFeed(URL, "us-west-2", clock, fetch=fetches)
    feed.start()
    assert fetches.urls == [URL]
    assert spot_price(provider(feed), "g6.8xlarge") == pytest.approx(0.9871, abs=5e-5)


def test_an_unreachable_advisor_falls_back_to_live_prices_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, fetches = Clock(), Fetches(OSError("connection refused"))
    feed = SpotAdvisorFeed(URL, "us-west-2", clock, fetch=fetches)
    with caplog.at_level(logging.WARNING, "gibbous.autoscaler.aws"):
        feed.start()  # no exception: the autoscaler starts
    assert "Spot Instance Advisor data not fetched" in caplog.text
    assert "live spot prices" in caplog.text
    ec2 = LiveSpotPrices()
    assert spot_price(provider(feed, ec2), "g6.8xlarge") == pytest.approx(0.80)
    assert ec2.calls >= 1


def test_a_later_failure_keeps_the_last_data_and_a_later_success_replaces_it() -> None:
    saving_60 = json.loads(json.dumps(DOCUMENT))
    saving_60["spot_advisor"]["us-west-2"]["Linux"]["g6.8xlarge"]["s"] = 60
    clock = Clock()
    fetches = Fetches(
        json.dumps(DOCUMENT).encode(), ValueError("not JSON"), json.dumps(saving_60).encode()
    )
    feed = SpotAdvisorFeed(URL, "us-west-2", clock, fetch=fetches, refresh_s=86400, retry_s=600)
    feed.start()
    aws = provider(feed)
    assert spot_price(aws, "g6.8xlarge") == pytest.approx(0.9871, abs=5e-5)
    clock.now += 3600  # not due: no fetch
    spot_price(aws, "g6.8xlarge")
    feed.wait(5)
    assert len(fetches.urls) == 1
    clock.now += 86400  # due: a background fetch that fails
    spot_price(aws, "g6.8xlarge")
    feed.wait(5)
    assert len(fetches.urls) == 2
    assert spot_price(aws, "g6.8xlarge") == pytest.approx(0.9871, abs=5e-5)
    feed.wait(5)
    assert len(fetches.urls) == 2  # the retry waits retry_s, not a fetch per decision
    clock.now += 600
    spot_price(aws, "g6.8xlarge")
    feed.wait(5)
    # 2.0144 x (1 - 0.60) = 0.80576
    assert spot_price(aws, "g6.8xlarge") == pytest.approx(0.80576, abs=5e-6)


def test_data_without_the_clusters_region_is_a_failed_fetch_not_a_crash() -> None:
    feed = SpotAdvisorFeed(URL, "eu-west-1", Clock(), fetch=Fetches(json.dumps(DOCUMENT).encode()))
    feed.start()
    assert feed.entries is None


@pytest.fixture
def served() -> Iterator[tuple[str, dict[str, bytes]]]:
    bodies: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


def test_fetch_reads_the_document_over_http_and_refuses_one_too_large(
    served: tuple[str, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, bodies = served
    bodies["/advisor.json"] = json.dumps(DOCUMENT).encode()
    assert json.loads(fetch_url(f"{base}/advisor.json")) == DOCUMENT
    monkeypatch.setattr(spotadvisor, "MAX_DOCUMENT_BYTES", 100)
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        fetch_url(f"{base}/advisor.json")
    with pytest.raises(ValueError, match="not an http"):
        fetch_url("file:///etc/passwd")
