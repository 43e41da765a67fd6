"""`gibbous estimate` starts fast: building the command line imports no server stack, no
kubernetes client and no cloud SDK (each command imports those in its `run`)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("kubernetes", "uvicorn", "starlette", "boto3", "botocore", "google", "azure", "oci")


def test_the_command_line_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from gibbous.cli import build_parser\n"
        "build_parser()\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert "gibbous" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
