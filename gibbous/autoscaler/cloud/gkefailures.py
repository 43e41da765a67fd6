"""GKE and Compute failures as Gibbous's typed cloud errors: refusals of a call, and the
failures GKE reports late, inside a pool operation or a MIG instance's last attempt."""

from __future__ import annotations

import re
from typing import Any

from google.api_core import exceptions as google_errors

from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)

STOCKOUT_CODES = ("RESOURCE_POOL_EXHAUSTED", "STOCKOUT")


def classify_api_error(
    error: Exception, request: LaunchRequest | None = None, zone: str = ""
) -> CloudError:
    """A synchronous GKE or Compute refusal as a typed failure."""
    code = getattr(error, "code", 0)
    message = str(getattr(error, "message", "") or error)
    lowered = message.lower()
    instance_type = request.instance_type if request else ""
    category = request.category if request else ""
    if isinstance(error, google_errors.TooManyRequests) or code == 429:
        return ThrottledError(2.0, f"GKE: {message}")
    if code == 403 and "ratelimitexceeded" in repr(getattr(error, "errors", "")).lower():
        return ThrottledError(60.0, f"GKE: {message}")  # a rate quota: back next minute
    if (isinstance(error, google_errors.FailedPrecondition) and "operation" in lowered) or (
        "currently" in lowered and "node pool" in lowered
    ):
        return ThrottledError(5.0, f"GKE: {message}")
    if "quota" in lowered and code == 403:
        return QuotaExceededError(instance_type, category, f"GKE: {message}")
    if any(c.lower() in lowered for c in STOCKOUT_CODES):
        return InsufficientCapacityError(instance_type, category, zone, f"GKE: {message}")
    if code in (401, 403) or isinstance(
        error, google_errors.PermissionDenied | google_errors.Unauthenticated
    ):
        return FatalConfigurationError(
            f"GKE refused the call ({code}): {message}; the autoscaler's service account needs "
            "roles/container.clusterAdmin (or node-pool rights) and roles/iam.serviceAccountUser"
        )
    return CloudError(f"GKE ({code}): {message}")


def failure_of(code: str, message: str) -> tuple[str, str]:
    """(FailureKind value, reason) of a failure reported inside an operation or a MIG's
    last attempt."""
    upper = code.upper()
    if "QUOTA" in upper:
        return "quota", f"{code}: {message}"
    return "insufficient-capacity", f"{code}: {message}"


def operation_failure(operation: Any) -> tuple[str, str] | None:
    """The failure of a DONE pool operation, or None when it succeeded."""
    error = operation.error
    if not (error and (error.code or error.message)) and not operation.status_message:
        return None
    for condition in operation.nodepool_conditions:
        if condition.code:
            return failure_of(
                str(condition.code.name if hasattr(condition.code, "name") else condition.code),
                condition.message or operation.status_message,
            )
    message = error.message or operation.status_message
    marker = re.search(r"\[([A-Z_]+)\]", message)
    return failure_of(marker.group(1) if marker else "GCE_STOCKOUT", message)
