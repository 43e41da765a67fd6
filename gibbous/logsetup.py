"""Where the servers' log lines go: standard error always, and with `logging.directory`
also a size-rotated file there, for a collector that reads a shared directory (Luna's
OpenTelemetry sidecar, P18); as text or as one JSON object a line (`logging.format`)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import time
from pathlib import Path
from typing import Any

from gibbous.core.errors import ConfigError
from gibbous.core.settings.options.logs import LoggingConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord carries; anything else on a record came from `extra=` and is
# written as a field of its own.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: `time` (UTC, RFC 3339 with milliseconds), `level`, `logger`,
    `message`, then the record's `extra=` fields, and `exception` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _rfc3339_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # `default=str`: an extra that JSON cannot hold (a datetime, a Path) is written as
        # its text rather than losing the line
        return json.dumps(entry, ensure_ascii=False, default=str)


def _rfc3339_utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def log_file_path(settings: LoggingConfig, component: str) -> Path:
    return Path(settings.directory) / f"gibbous-{component}.log"


def configure_logging(level: str, settings: LoggingConfig, component: str) -> None:
    """Replace the root logger's handlers: standard error, and the rotated file of
    `component` (autoscaler, webhook, extender) when `settings.directory` is set."""
    formatter: logging.Formatter = (
        JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.directory:
        path = log_file_path(settings, component)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(
                logging.handlers.RotatingFileHandler(
                    path,
                    maxBytes=settings.max_file_bytes,
                    backupCount=settings.max_files,
                    encoding="utf-8",
                )
            )
        except OSError as error:
            raise ConfigError(f"logging.directory: cannot write {path}: {error}") from None
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)
    # uvicorn's own dictConfig (run by any uvicorn.Config built without log_config=None in
    # this process) gives its loggers handlers of their own and stops them propagating;
    # undo that so its lines reach these handlers, in this format, too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
