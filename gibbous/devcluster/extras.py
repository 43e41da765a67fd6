"""What each `dev-cluster up --cloud` needs installed, checked before anything starts.

The emulators run as `python -m` children and import their SDKs only there; without the
`emulator` extra they would die after the control plane had started, with a traceback in a
log. Looking the modules up first (`importlib.util.find_spec`, which imports nothing but
the parent packages) lets `up` say which extra to install and leave nothing behind.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

INSTALL_EMULATOR_EXTRA = ".venv/bin/pip install -e '.[emulator]'"

# The modules the emulator (its `emulator.py`) and the provider it serves import; all come
# with the `emulator` extra of pyproject.toml.
CLOUD_MODULES: dict[str, tuple[str, ...]] = {
    "kwok": (),
    "aws": ("boto3", "moto", "flask", "flask_cors"),
    "gcp": ("google.cloud.container_v1", "google.cloud.compute_v1"),
    "azure": ("azure.mgmt.containerservice", "azure.identity", "trustme"),
    "oci": ("oci",),
}


def missing_modules(
    cloud: str, find_spec: Callable[[str], Any] = importlib.util.find_spec
) -> list[str]:
    """The modules `--cloud CLOUD` needs that this Python cannot import."""
    missing = []
    for module in CLOUD_MODULES[cloud]:
        try:
            found = find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package (`google`, `azure`) is absent
            found = False
        if not found:
            missing.append(module)
    return missing


def missing_extra_message(cloud: str, missing: list[str]) -> str:
    return (
        f"--cloud {cloud} needs the `emulator` extra (missing: {', '.join(missing)}); "
        f"install it from your checkout of Gibbous with `{INSTALL_EMULATOR_EXTRA}` "
        "(the pip of the Python that runs gibbous), then run `dev-cluster up` again"
    )
