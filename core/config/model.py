"""Tenant YAML files: structure, environment substitution and validation.

A tenant file is parsed with PyYAML (keeping line numbers), ``${VAR}`` and
``${VAR:-default}`` are substituted from the environment (only the tenant's
own ``<ID>_*`` variables and those ops allow: :class:`EnvPolicy`; the values
are never shown in an error), and the result is
converted with msgspec into :class:`TenantConfig`. Each enabled feature's
block is then converted with the Struct its plugin registers, and each status
machine is validated. Every problem becomes a :class:`ConfigIssue` naming the
file, line and field path; :class:`ConfigError` carries all of them.

The Structs live in :mod:`core.config._spec`, the YAML parsing and its limits
in :mod:`core.config._document`, the ``${VAR}`` references in
:mod:`core.config._substitution`; this module parses a file (:func:`parse_tenant_text`)
and re-exports every public name of the three.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from core.config._document import (
    MAX_TENANT_FILE_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    ConfigError,
    ConfigIssue,
    YamlDocument,
    format_path,
)
from core.config._spec import (
    DATABASE_NAME_PATTERN,
    DATABASE_URL_ENV_PREFIX,
    DEFAULT_DATABASE,
    RESERVED_SCHEMAS,
    SCHEMA_PATTERN,
    TENANT_ID_PATTERN,
    ApiConfig,
    ApiKey,
    BotConfig,
    LimitsConfig,
    StorageConfig,
    TenantConfig,
    WebAppConfig,
    reserved_schema_problem,
)
from core.config._substitution import (
    DEMO_SECRET_SUFFIXES,
    RUNTIME_ENV_PREFIX,
    EnvPolicy,
    EnvReference,
    Substitution,
    TenantDocument,
    conceal_issues,
    database_names_from_env,
    demo_secret_issues,
    is_loopback_host,
    parse_env_allow,
    secret_values,
    substitute_env,
    truncate_shown,
)

# Every public name of the tenant spec model, wherever it is defined: the rest
# of the code imports them from here.
__all__ = [
    "DATABASE_NAME_PATTERN",
    "DATABASE_URL_ENV_PREFIX",
    "DEFAULT_DATABASE",
    "DEMO_SECRET_SUFFIXES",
    "MAX_TENANT_FILE_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "RESERVED_SCHEMAS",
    "RUNTIME_ENV_PREFIX",
    "SCHEMA_PATTERN",
    "TENANT_ID_PATTERN",
    "ApiConfig",
    "ApiKey",
    "BotConfig",
    "ConfigError",
    "ConfigIssue",
    "EnvPolicy",
    "EnvReference",
    "LimitsConfig",
    "StorageConfig",
    "Substitution",
    "TenantConfig",
    "TenantDocument",
    "WebAppConfig",
    "YamlDocument",
    "conceal_issues",
    "database_names_from_env",
    "format_path",
    "is_loopback_host",
    "parse_env_allow",
    "parse_tenant_text",
    "reserved_schema_problem",
    "secret_values",
    "substitute_env",
    "validation_issue",
]


def _parse_msgspec_path(text: str, data: Any) -> list[str | int]:
    """Parse msgspec's ``$.a[0].b`` path; ``[...]`` (a dict key msgspec does not name) is
    resolved to the one key of ``data`` under which the rest of the path exists."""
    tokens = re.findall(r"\.([^.\[\]]+)|\[(\d+)\]|(\[\.\.\.\])", text.removeprefix("$"))
    parts: list[str | int] = []
    for position, (name, index, any_key) in enumerate(tokens):
        if name:
            parts.append(name)
        elif index:
            parts.append(int(index))
        elif any_key:
            found, mapping = _lookup(data, parts)
            rest = [n or (int(i) if i else "") for n, i, _ in tokens[position + 1 :]]
            candidates = [
                k
                for k in (mapping if found and isinstance(mapping, dict) else {})
                if all(isinstance(r, str | int) and r != "" for r in rest)
                and _lookup(mapping[k], rest)[0]
            ]
            if len(candidates) != 1:
                break
            parts.append(candidates[0])
    return parts


def _lookup(data: Any, path: list[str | int]) -> tuple[bool, Any]:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, data


def validation_issue(
    doc: YamlDocument, error: msgspec.ValidationError, base: list[str | int], data: Any
) -> ConfigIssue:
    """Turn a msgspec ValidationError raised for ``data`` (found at ``base``) into a ConfigIssue.

    ``Expected `int` >= 5 - at `$.slot_minutes``` becomes
    ``features.booking.slot_minutes: expected int >= 5, got "x"``; a value
    read from the environment is shown as ``got the value of ${NAME}``, and a
    longer one is cut to about 60 characters.
    """
    message = str(error)
    path: list[str | int] = []
    if " - at `" in message:
        message, where = message.rsplit(" - at `", 1)
        path = _parse_msgspec_path(where.rstrip("`"), data)
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    if unknown:
        path.append(unknown.group(1))
        message = "unknown field"
    missing = re.match(r"Object missing required field `(.+)`", message)
    if missing:
        message = f"missing required field {missing.group(1)!r}"
        full = base + path
        issue = doc.issue(full, message)
        return ConfigIssue(issue.file, issue.line, format_path([*full, missing.group(1)]), message)
    message = message.replace("`", "")
    message = message[:1].lower() + message[1:]
    found, value = _lookup(data, path)
    if found and not unknown and not isinstance(value, dict | list):
        # A value read from the environment is named by its reference, never shown.
        shown = (
            doc.shown(base + path, value)
            if isinstance(doc, TenantDocument)
            else truncate_shown(msgspec.json.encode(value).decode())
        )
        message = message.split(", got ")[0] + f", got {shown}"
    issue = doc.issue(base + path, message)
    return conceal_issues(doc, [issue])[0]


def parse_tenant_text(
    text: str,
    filename: str,
    env: Mapping[str, str] | None = None,
    *,
    env_allow: Iterable[str] | None = None,
    env_secrets_only: bool = False,
    listen_host: str = "127.0.0.1",
    databases: Iterable[str] | None = None,
) -> tuple[TenantConfig, TenantDocument]:
    """Parse and check the core part of a tenant file.

    Args:
        text: the YAML source.
        filename: shown in errors (``tenants/filin.yaml``).
        env: environment for ``${VAR}``; ``os.environ`` when None.
        env_allow: variable names (``SHARED_SMTP_HOST``) or ``PREFIX_*``
            patterns every tenant file may read besides its own ``<ID>_*``
            namespace; None reads them from ``TENANTRY_TENANT_ENV_ALLOW`` in
            ``env`` (what ``tenantry check`` does), the runtime passes
            :attr:`core.runtime.settings.RuntimeSettings.tenant_env_allow`.
        env_secrets_only: read references only in ``bot.token``,
            ``bot.webhook_secret`` and ``api.keys`` (a scoped admin token's
            upload; :class:`core.config._substitution.EnvPolicy`).
        listen_host: the address the runtime listens on; demo secrets are
            refused unless it is a loopback address.
        databases: names of the PostgreSQL servers ``storage.database`` may
            name (``default`` is always one); None reads them from the
            ``TENANTRY_DATABASE_URL_<NAME>`` variables of ``env``
            (:func:`database_names_from_env`), the runtime passes its own.

    Returns:
        The TenantConfig (features and statuses still raw) and the parsed
        document, for locating later errors; its ``substitutions`` record
        every value read through a reference.

    Raises:
        ConfigError: invalid YAML, unknown or mistyped fields, a reference
            outside the tenant's namespace or to an unset variable, an ``id``
            written as a reference, an unknown time zone, an id not matching
            the file name, a reserved schema, a demo secret on a runtime that
            does not listen on loopback. No message shows a value read from
            the environment.
    """
    doc = TenantDocument(filename, text)
    environment = os.environ if env is None else env
    if env_allow is None:
        env_allow = parse_env_allow(environment.get("TENANTRY_TENANT_ENV_ALLOW", ""))
    raw_id = doc.data.get("id")
    if isinstance(raw_id, str) and "${" in raw_id:
        raise ConfigError(
            [
                doc.issue(
                    ["id"],
                    "must be written out: the id names the tenant's namespace of "
                    "environment variables, so it cannot be read from one",
                )
            ]
        )
    if isinstance(raw_id, str) and re.match(TENANT_ID_PATTERN, raw_id):
        issues: list[ConfigIssue] = []
        policy = EnvPolicy(raw_id, env_allow, secrets_only=env_secrets_only)
        data = substitute_env(doc, doc.data, [], environment, issues, policy, doc.substitutions)
        if issues:
            raise ConfigError(issues)
    else:
        # Without a valid id there is no namespace: read nothing, and let the
        # conversion below report the id.
        data = dict(doc.data)
    for key in ("features", "statuses", "texts"):
        if key in data and data[key] is None:
            data[key] = {}
    try:
        config = msgspec.convert(data, TenantConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError([validation_issue(doc, exc, [], data)]) from None
    problems: list[ConfigIssue] = []
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(config.timezone)
    except (KeyError, ValueError, ImportError, OSError):
        substitution = doc.substitutions.get(("timezone",))
        shown = substitution.shown() if substitution else truncate_shown(repr(config.timezone))
        problems.append(doc.issue(["timezone"], f"unknown time zone {shown}"))
    expected = Path(filename).stem
    if Path(filename).suffix in (".yaml", ".yml") and expected != config.id:
        problems.append(
            doc.issue(["id"], f"id {config.id!r} must match the file name {expected!r}")
        )
    schema_problem = reserved_schema_problem(config.schema)
    if schema_problem:
        problems.append(doc.issue(["storage", "schema"], schema_problem))
    known_databases = {
        DEFAULT_DATABASE,
        *(database_names_from_env(environment) if databases is None else databases),
    }
    if config.storage.database not in known_databases:
        problems.append(
            doc.issue(
                ["storage", "database"],
                f"unknown PostgreSQL server {config.storage.database!r} "
                f"(known: {', '.join(sorted(known_databases))}; a name is set up with "
                "TENANTRY_DATABASE_URL_<NAME>)",
            )
        )
    if not is_loopback_host(listen_host):
        problems.extend(demo_secret_issues(doc, data, [], config.id, listen_host))
    if problems:
        raise ConfigError(conceal_issues(doc, problems))
    return config, doc
