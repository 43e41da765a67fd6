"""What the cloud-provider tests share: a clock the test moves (the emulator's and the
provider's), and the SDK clients a test made, closed when it ends (a pooled connection
collected later would surface as a ResourceWarning in whichever test runs then)."""

from __future__ import annotations

from typing import Any


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


OPENED: list[Any] = []  # anything with close(), closed after each test (conftest)
