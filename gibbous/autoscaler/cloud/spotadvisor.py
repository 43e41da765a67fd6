"""The Spot Instance Advisor's data, fetched by the autoscaler itself (`aws.useSpotAdvisor`).

The advisor page (https://aws.amazon.com/ec2/spot/instance-advisor/) loads one public JSON
document, `https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json` (the
`aws.spotAdvisorUrl` default), with every region's savings and interruption buckets; AWS
recomputes it over the trailing month, so a daily refresh loses nothing. Luna fetches the
same data (P04); `aws.spotAdvisorFile` stays for clusters that cannot reach S3.

The first fetch happens at start, bounded by FETCH_TIMEOUT_S, so the first decisions
already use the advisor; later refreshes run on a thread of their own and never delay a
decision. When the document cannot be had (unreachable, refused, too large, not the
advisor's shape), the provider keeps the last good data, or prices spot from live prices
until a retry succeeds, and says so in the log: never a refusal to start.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from gibbous.core.choice.spotprices import AdvisorEntry, parse_spot_advisor
from gibbous.core.errors import ConfigError

log = logging.getLogger("gibbous.autoscaler.aws")

DEFAULT_URL = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"
REFRESH_S = 24 * 3600.0
RETRY_S = 600.0
FETCH_TIMEOUT_S = 20.0
# The document was about 2 MB in 2025 (every region, Linux and Windows); anything an
# order of magnitude beyond that is not the advisor's and is not read into memory.
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024

Fetch = Callable[[str], bytes]


def fetch_url(url: str) -> bytes:
    """GET `url`, at most MAX_DOCUMENT_BYTES, within FETCH_TIMEOUT_S per read."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
        body: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
    return body


@dataclass
class SpotAdvisorFeed:
    """The advisor's entries for one region, refreshed every REFRESH_S (RETRY_S after a
    failure). `current()` never blocks on the network."""

    url: str
    region: str
    clock: Callable[[], float]
    fetch: Fetch = fetch_url
    refresh_s: float = REFRESH_S
    retry_s: float = RETRY_S
    entries: dict[str, AdvisorEntry] | None = None
    fetched_at: float | None = None  # clock time of the data in `entries`
    _next_try: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: threading.Thread | None = None

    def start(self) -> None:
        """The first fetch, in the caller's thread (at start, before any decision)."""
        self._refresh()

    def current(self) -> dict[str, AdvisorEntry] | None:
        """The latest entries (None: none yet; spot is then priced live); starts a
        background refresh when they are due."""
        with self._lock:
            due = self.clock() >= self._next_try and self._running is None
            if due:
                self._running = threading.Thread(
                    target=self._refresh, name="spot-advisor", daemon=True
                )
                self._running.start()
            return self.entries

    def wait(self, timeout_s: float) -> None:
        """Wait for a background refresh (for tests and orderly shutdown)."""
        running = self._running
        if running is not None:
            running.join(timeout_s)

    def _refresh(self) -> None:
        try:
            entries = parse_spot_advisor(json.loads(self.fetch(self.url)), self.region)
        except (OSError, ValueError, ConfigError) as error:
            # OSError: URLError, timeouts and refused connections; ValueError: bad JSON.
            stale = (
                "keeping the data of the last fetch"
                if self.entries is not None
                else "pricing spot from live spot prices until it is"
            )
            log.warning(
                "Spot Instance Advisor data not fetched from %s (%s); %s; next try in %.0f s",
                self.url,
                error,
                stale,
                self.retry_s,
            )
            with self._lock:
                self._next_try = self.clock() + self.retry_s
                self._running = None
            return
        with self._lock:
            now = self.clock()
            self.entries, self.fetched_at = entries, now
            self._next_try = now + self.refresh_s
            self._running = None
        log.info("Spot Instance Advisor data for %s: %d types", self.region, len(entries))
