"""Where the servers' logs go besides standard error (`logging.*`): rotated files in a
directory, for a log collector running beside Gibbous (P18's OpenTelemetry sidecar), and
their format."""

from __future__ import annotations

from dataclasses import dataclass

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.valuetypes import BYTES, TRIMMED_TEXT, choice, whole_number


@dataclass(frozen=True)
class LoggingConfig:
    directory: str = ""  # empty: standard error only
    format: str = "text"  # text | json
    # 10 MiB x (1 + 5): 60 MiB at most, well inside P18's 500Mi emptyDir
    max_file_bytes: int = 10 * 2**20
    max_files: int = 5


LOGGING = Section(
    "Logging",
    (
        Option(
            key="logging.directory",
            attribute="logging.directory",
            value_type=TRIMMED_TEXT,
            help="also write the logs to <directory>/gibbous-<component>.log, rotated "
            "(empty: standard error only)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="logging.format",
            attribute="logging.format",
            value_type=choice(("text", "json")),
            help="text, or json: one JSON object a line (time, level, logger, message, extras)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="logging.maxFileSize",
            attribute="logging.max_file_bytes",
            value_type=BYTES,
            help="a log file is rotated when the next line would take it past this size",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="logging.maxFiles",
            attribute="logging.max_files",
            value_type=whole_number(1, 100),
            help="rotated log files kept besides the current one",
            luna=None,
            since="0.1.0",
        ),
    ),
)
