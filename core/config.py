"""Tenant YAML files: structure, environment substitution and validation.

A tenant file is parsed with PyYAML (keeping line numbers), ``${VAR}`` and
``${VAR:-default}`` are substituted from the environment, and the result is
converted with msgspec into :class:`TenantConfig`. Each enabled feature's
block is then converted with the Struct its plugin registers, and each status
machine is validated. Every problem becomes a :class:`ConfigIssue` naming the
file, line and field path; :class:`ConfigError` carries all of them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

__all__ = [
    "ApiConfig",
    "BotConfig",
    "ConfigError",
    "ConfigIssue",
    "StorageConfig",
    "TenantConfig",
    "WebAppConfig",
    "parse_tenant_text",
]

TENANT_ID_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# PostgreSQL identifiers are at most 63 bytes; we keep schemas plain lowercase
# so they never need quoting in SQL or in a search_path.
SCHEMA_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class BotConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The tenant's Telegram bot.

    Attributes:
        token: Bot API token ``<bot id>:<secret>`` from @BotFather.
        mode: ``webhook`` (Telegram posts to ``/webhook/<id>``) or ``polling``
            (the runtime calls getUpdates).
        webhook_secret: Bot API setWebhook.secret_token, 1-256 chars
            ``A-Za-z0-9_-``. Empty: derived from ``TENANTRY_SECRET_KEY`` and the id.
        admins: Telegram user ids with the admin role in this tenant's bot.
    """

    token: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,100}$")]
    mode: Annotated[str, msgspec.Meta(pattern=r"^(webhook|polling)$")] = "webhook"
    webhook_secret: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{0,256}$")] = ""
    admins: list[int] = []

    @property
    def bot_id(self) -> int:
        """The bot's Telegram user id: the token part before the colon."""
        return int(self.token.split(":", 1)[0])


class StorageConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the tenant's data lives.

    Attributes:
        schema: PostgreSQL schema, default ``tenant_<id>``; created on first start.
        redis_prefix: prefix of every Redis key of the tenant, default ``<id>:``.
            Must not be a prefix of another tenant's prefix.
    """

    schema: Annotated[str, msgspec.Meta(pattern=SCHEMA_PATTERN)] | None = None
    redis_prefix: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """HTTP API access to ``/api/tenants/<id>/...``.

    Attributes:
        keys: accepted API keys (``X-API-Key`` header or ``Authorization:
            Bearer``); write them as ``${ENV_VAR}``, never inline. Empty keys
            are ignored, so ``${KEY:-}`` disables key access.
    """

    keys: list[str] = []


class WebAppConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Telegram WebApp authentication (``X-Telegram-Init-Data``).

    Attributes:
        max_age_seconds: how old ``auth_date`` may be before the init data is
            refused, in seconds (default one day).
        url: the WebApp page opened by the bot's buttons, if any.
    """

    max_age_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 86400
    url: str = ""


class TenantConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tenant file, after environment substitution.

    ``features`` and ``statuses`` hold raw blocks here;
    :func:`core.loader.load_tenant_text` converts each with its plugin's Struct.

    Attributes:
        id: ``[a-z][a-z0-9_]{0,39}``, unique; used in URLs and default names.
        name: human name shown in logs and /health.
        timezone: IANA zone for showing times (storage is always UTC).
        locale: language of bot texts, e.g. ``ru`` or ``en``.
        bot: the Telegram bot.
        storage: schema and Redis prefix.
        api: API keys for the HTTP API.
        webapp: WebApp init-data settings.
        texts: overrides of bot texts by key (``welcome``, plugin keys).
        features: plugin name -> that plugin's settings block.
        statuses: entity -> status machine override (see ``docs/statuses.md``).
    """

    id: Annotated[str, msgspec.Meta(pattern=TENANT_ID_PATTERN)]
    bot: BotConfig
    name: str = ""
    timezone: str = "UTC"
    locale: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}(-[A-Za-z]{2})?$")] = "en"
    storage: StorageConfig = StorageConfig()
    api: ApiConfig = ApiConfig()
    webapp: WebAppConfig = WebAppConfig()
    texts: dict[str, str] = {}
    features: dict[str, Any] = {}
    statuses: dict[str, Any] = {}

    @property
    def schema(self) -> str:
        """The PostgreSQL schema: ``storage.schema`` or ``tenant_<id>``."""
        return self.storage.schema or f"tenant_{self.id}"

    @property
    def redis_prefix(self) -> str:
        """The Redis key prefix: ``storage.redis_prefix`` or ``<id>:``."""
        return self.storage.redis_prefix or f"{self.id}:"


class ConfigIssue(msgspec.Struct, frozen=True):
    """One problem in a tenant file.

    Attributes:
        file: the file as given (or ``<admin upload>``).
        line: 1-based line, or None when unknown.
        path: dotted field path (``features.booking.slot_minutes``), "" for the file.
        reason: what is wrong, in plain words.
    """

    file: str
    line: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{location}: {self.path}: {self.reason}" if self.path else f"{location}: {self.reason}"
        )


class ConfigError(Exception):
    """A tenant file (or a set of them) failed validation.

    Attributes:
        issues: every problem found, each printable as ``file:line: path: reason``.
    """

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class YamlDocument:
    """A parsed YAML mapping with the line of every node, for error messages."""

    def __init__(self, filename: str, text: str):
        self.filename = filename
        try:
            # One pass: compose keeps line numbers, then build Python objects
            # from the same nodes (libyaml's parser when available).
            self.root = yaml.compose(text, Loader=_Loader)
            self.data = _Loader("").construct_document(self.root) if self.root is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(
                [ConfigIssue(filename, line, "", f"invalid YAML: {problem}")]
            ) from None
        if not isinstance(self.data, dict):
            raise ConfigError(
                [ConfigIssue(filename, 1, "", "expected a mapping of tenant settings")]
            )

    def line_of(self, path: list[str | int]) -> int | None:
        """Return the 1-based line of the deepest existing node on ``path``."""
        node = self.root
        line = node.start_mark.line + 1 if node else None
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == str(part):
                        child = value
                        line = key.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    child = node.value[part]
                    line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line

    def issue(self, path: list[str | int], reason: str) -> ConfigIssue:
        """Build a ConfigIssue for ``path`` with its line number."""
        return ConfigIssue(self.filename, self.line_of(path), format_path(path), reason)


def format_path(path: list[str | int]) -> str:
    """Render ``["features", "booking", "tables", 0, "id"]`` as ``features.booking.tables[0].id``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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
    ``features.booking.slot_minutes: expected int >= 5, got "x"``.
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
        message = message.split(", got ")[0] + f", got {msgspec.json.encode(value).decode()}"
    return doc.issue(base + path, message)


def substitute_env(
    doc: YamlDocument,
    value: Any,
    path: list[str | int],
    env: Mapping[str, str],
    issues: list[ConfigIssue],
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of ``value``.

    A ``${VAR}`` whose variable is not set (and has no default) is reported in
    ``issues`` with its path; the reference is left as is.
    """
    if isinstance(value, dict):
        return {k: substitute_env(doc, v, [*path, str(k)], env, issues) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(doc, v, [*path, i], env, issues) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            issues.append(doc.issue(path, f"environment variable {name} is not set"))
            return match.group(0)

        return _ENV_REF.sub(replace, value)
    return value


def parse_tenant_text(
    text: str, filename: str, env: Mapping[str, str] | None = None
) -> tuple[TenantConfig, YamlDocument]:
    """Parse and check the core part of a tenant file.

    Args:
        text: the YAML source.
        filename: shown in errors (``tenants/filin.yaml``).
        env: environment for ``${VAR}``; ``os.environ`` when None.

    Returns:
        The TenantConfig (features and statuses still raw) and the parsed
        document, for locating later errors.

    Raises:
        ConfigError: invalid YAML, unknown or mistyped fields, missing env vars.
    """
    doc = YamlDocument(filename, text)
    issues: list[ConfigIssue] = []
    data = substitute_env(doc, doc.data, [], os.environ if env is None else env, issues)
    if issues:
        raise ConfigError(issues)
    for key in ("features", "statuses", "texts"):
        if key in data and data[key] is None:
            data[key] = {}
    try:
        config = msgspec.convert(data, TenantConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError([validation_issue(doc, exc, [], data)]) from None
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(config.timezone)
    except (KeyError, ValueError, ImportError, OSError):
        raise ConfigError(
            [doc.issue(["timezone"], f"unknown time zone {config.timezone!r}")]
        ) from None
    expected = Path(filename).stem
    if Path(filename).suffix in (".yaml", ".yml") and expected != config.id:
        raise ConfigError(
            [doc.issue(["id"], f"id {config.id!r} must match the file name {expected!r}")]
        )
    return config, doc
