"""The simulation report as a person sees it: Debian's Chromium, headless, loads the page
and takes a screenshot, and the plotted curves are there in the policy's colour (counted
in the decoded PNG, beyond what the legend and the table's row marker account for).
Needs Chromium (installed from Debian's packages when the suite runs as root); a machine
without it says why in the skip reason.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from gibbous.cli import main

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=900,1300",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        for command in (install, ["apt-get", "update", "-qq"], install):
            subprocess.run(command, capture_output=True, check=False, env=environment, timeout=900)
            found = shutil.which("chromium")
            if found is not None:
                break
    if found is None:
        pytest.skip("no chromium here (Debian's package; install it as root to run this test)")
    return found


def decode_png(data: bytes) -> list[tuple[int, int, int]]:
    """Every pixel's (r, g, b) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        chunk = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if chunk == b"IHDR":
            header = body
        elif chunk == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    offset = 0
    for _ in range(height):
        kind, line = raw[offset], bytearray(raw[offset + 1 : offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        pixels.extend((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        previous = line
    return pixels


def test_the_report_plots_render_in_a_real_browser(chromium: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    argv = ["simulate", "p14-binpack-mix", "--policy", "karpenter-like", "--quiet"]
    assert main([*argv, "--report", str(report)]) == 0
    shot = tmp_path / "shot.png"
    rendered = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert shot.is_file(), rendered.stderr[-2000:]
    colours = Counter(decode_png(shot.read_bytes()))
    red = (0xD1, 0x24, 0x2F)  # karpenter-like's colour in the report
    # The legend's square and the table row's 6 px marker are a few hundred pixels; three
    # curves across 660 px of plot are well over a thousand more.
    assert colours[red] > 1500, colours.most_common(8)
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    ).stdout
    assert dom.count("<svg") == 3 and dom.count('class="series"') == 3
