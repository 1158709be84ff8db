"""Reading and validating tenant files and stored texts off the event loop, one refusal per file."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pluggy
import structlog

from core.config.loader import TenantSpec, load_tenant_file, load_tenant_text
from core.config.model import ConfigError, ConfigIssue

log = structlog.get_logger("tenantry.registry")


def load_guarded(filename: str, load: Callable[..., TenantSpec], *args: Any) -> TenantSpec:
    """Run ``load(*args)`` (a tenant file's validation) and log its refusal once.

    Any exception, not only a ConfigError, refuses that one file: a plugin's
    settings check with a bug must not stop the watcher or the other tenants.

    Raises:
        ConfigError: the file's problems (logged at warning, no traceback), or
            one issue ``could not be loaded: <exception>`` for any other
            exception (logged at error with its traceback).
    """
    try:
        return load(*args)
    except ConfigError as exc:
        if exc.trace:  # a plugin's check crashed: its (concealed) traceback is for its author
            log.error(
                "tenant_file_rejected",
                file=filename,
                errors=[str(i) for i in exc.issues],
                traceback=exc.trace,
            )
        else:
            log.warning("tenant_file_rejected", file=filename, errors=[str(i) for i in exc.issues])
        raise
    except Exception as exc:
        issue = ConfigIssue(filename, None, "", f"could not be loaded: {type(exc).__name__}: {exc}")
        log.error("tenant_file_rejected", file=filename, errors=[str(issue)], exc_info=True)
        raise ConfigError([issue]) from None


def load_files(
    paths: Iterable[Path], pm: pluggy.PluginManager, load_options: dict[str, Any]
) -> list[tuple[Path, TenantSpec | ConfigError]]:
    """Read and validate each tenant file (in a worker thread): its spec, or why it was refused."""
    loaded: list[tuple[Path, TenantSpec | ConfigError]] = []
    for path in paths:
        try:
            load = functools.partial(load_tenant_file, **load_options)
            loaded.append((path, load_guarded(str(path), load, path, pm)))
        except ConfigError as exc:
            loaded.append((path, exc))
    return loaded


def load_texts(
    documents: Iterable[tuple[str, str]], pm: pluggy.PluginManager, load_options: dict[str, Any]
) -> list[tuple[str, TenantSpec | ConfigError]]:
    """Validate stored texts ``(label, text)`` (in a worker thread): each spec, or why it was refused."""
    loaded: list[tuple[str, TenantSpec | ConfigError]] = []
    load = functools.partial(load_tenant_text, **load_options)
    for label, text in documents:
        try:
            loaded.append((label, load_guarded(label, load, text, label, pm)))
        except ConfigError as exc:
            loaded.append((label, exc))
    return loaded
