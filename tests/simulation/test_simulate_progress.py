"""`gibbous simulate` draws progress bars (redrawn with carriage returns) only when standard
error is a terminal: piped or logged output gets none, as with the usual progress
libraries (a newcomer found `\\r` bars in piped output)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A built-in scenario with the quickest policy: the run takes about a second.
ARGV = [sys.executable, "-m", "gibbous", "simulate", "p10-gke-spot", "--policy", "static"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def test_a_pipe_gets_no_progress() -> None:
    result = subprocess.run(ARGV, capture_output=True, env=ENV, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert b"\r" not in result.stderr
    assert b"\r" not in result.stdout
    assert b"static" in result.stdout  # the table itself still comes


def test_a_terminal_gets_progress_and_quiet_silences_it() -> None:
    def stderr_on_a_terminal(*extra: str) -> bytes:
        controller, terminal = pty.openpty()
        try:
            process = subprocess.Popen(
                [*ARGV, *extra],
                stdout=subprocess.DEVNULL,
                stderr=terminal,
                env=ENV,
            )
            os.close(terminal)
            seen = b""
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: the child closed its side
                    break
                if not chunk:
                    break
                seen += chunk
            assert process.wait(timeout=120) == 0, seen
            return seen
        finally:
            os.close(controller)

    shown = stderr_on_a_terminal()
    assert b"\rp10-gke-spot static" in shown
    assert b"100%" in shown
    assert b"\r" not in stderr_on_a_terminal("--quiet")
