"""structlog setup: JSON lines on stderr with ``tenant`` and ``update_id`` when bound.

Every line passes :func:`core.runtime.redaction.redact_event`: known secrets and Bot
API tokens never reach the output, in messages, fields or tracebacks.
"""

from __future__ import annotations

import logging
import sys

import structlog

from core.runtime.redaction import redact_event

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog and route stdlib logging (aiogram, uvicorn) through it.

    Args:
        level: minimum level name (``DEBUG``, ``INFO``...).
        json: JSON lines (production) or coloured console lines (development).
    """
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Secrets out before anything sees the event: other handlers (pytest's
        # caplog) get the dict as it leaves this chain.
        redact_event,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            # Drop calls below the level before any other processor runs.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                # Again on the rendered traceback and stack, which exist only now.
                redact_event,
                renderer,
            ],
        )
    )
    handler.set_name("tenantry")
    root = logging.getLogger()
    # Replace our own handler on reconfiguration, keep others (pytest's caplog).
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "tenantry"] + [handler]
    root.setLevel(level.upper())
    # aiogram logs every handled update at INFO; the runtime keeps its own
    # per-update metrics, so only its warnings are worth a log line.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # saq logs each cron tick and pgserver each pg_ctl call at INFO.
    logging.getLogger("saq").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
