"""Structured logging: one JSON object per line in production, readable lines in development.

structlog renders every record, ours and the standard library's (Django, Daphne, Channels),
so a line always has `timestamp`, `level`, `logger` and `event`. Context such as
`request_id` or `user_id` is bound with `structlog.contextvars` and lands on every line.
"""

import logging
from typing import Any

import structlog

# Keys that must never reach a log line, whatever a caller binds.
_SECRET_KEYS = frozenset({"token", "access", "refresh", "password", "content", "authorization"})


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in _SECRET_KEYS & event.keys():
        event[key] = "[redacted]"
    return event


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _drop_secrets,
]


def build_logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": SHARED_PROCESSORS,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Django logs every 4xx as a warning with the full path (query strings
            # can carry ?token=); our access log below replaces it.
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "ERROR"},
            "daphne": {"level": "WARNING"},
            "twisted": {"level": "WARNING"},
        },
    }


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


logging.captureWarnings(True)
