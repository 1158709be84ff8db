"""Tenant YAML files: structure, environment substitution and validation.

A tenant file is parsed with PyYAML (keeping line numbers), ``${VAR}`` and
``${VAR:-default}`` are substituted from the environment (only the tenant's
own ``<ID>_*`` variables and those ops allow: :class:`EnvPolicy`; the values
are never shown in an error), and the result is
converted with msgspec into :class:`TenantConfig`. Each enabled feature's
block is then converted with the Struct its plugin registers, and each status
machine is validated. Every problem becomes a :class:`ConfigIssue` naming the
file, line and field path; :class:`ConfigError` carries all of them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

__all__ = [
    "DATABASE_NAME_PATTERN",
    "DEFAULT_DATABASE",
    "MAX_TENANT_FILE_BYTES",
    "ApiConfig",
    "ApiKey",
    "BotConfig",
    "ConfigError",
    "ConfigIssue",
    "EnvPolicy",
    "LimitsConfig",
    "StorageConfig",
    "TenantConfig",
    "TenantDocument",
    "WebAppConfig",
    "database_names_from_env",
    "is_loopback_host",
    "parse_env_allow",
    "parse_tenant_text",
]

TENANT_ID_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# PostgreSQL identifiers are at most 63 bytes; we keep schemas plain lowercase
# so they never need quoting in SQL or in a search_path.
SCHEMA_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
DATABASE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
"""A PostgreSQL server name of ``storage.database`` (``TENANTRY_DATABASE_URL_<NAME>``, lowercased)."""
DEFAULT_DATABASE = "default"
"""The server of ``TENANTRY_DATABASE_URL``: the control schema's, and every tenant's unless named."""
DATABASE_URL_ENV_PREFIX = "TENANTRY_DATABASE_URL_"
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
            Never ``public``, ``information_schema`` or ``pg_*``
            (:data:`RESERVED_SCHEMAS`).
        redis_prefix: prefix of every Redis key of the tenant, default ``<id>:``.
            Must not be a prefix of another tenant's prefix.
        max_connections: most connections of the shared PostgreSQL pool the
            tenant may hold at once, 1-100, default 5; never more than the
            pool size minus one (``TENANTRY_DB_POOL_MAX``), so one slow tenant
            cannot take the whole pool (:class:`core.storage.db.TenantDB`).
        database: the PostgreSQL server holding the schema, by name: ``default``
            (``TENANTRY_DATABASE_URL``, the default) or a name ``<name>`` the
            runtime maps to a URL with ``TENANTRY_DATABASE_URL_<NAME>``
            (docs/ops.md, "Placement"). An unknown name refuses the file.
    """

    schema: Annotated[str, msgspec.Meta(pattern=SCHEMA_PATTERN)] | None = None
    redis_prefix: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    database: Annotated[str, msgspec.Meta(pattern=DATABASE_NAME_PATTERN)] = DEFAULT_DATABASE


class ApiKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One API key with the actor it stands for (an item of ``api.keys`` written as a mapping).

    Attributes:
        key: the secret (``X-API-Key`` or ``Authorization: Bearer``); write
            it as ``${ENV_VAR}``. Empty: the entry is ignored.
        role: the role the key acts in, one a plugin declares
            (``register_roles``): default ``admin``.
        scope: scope kind -> the value or values the key is limited to
            (``{store: bakery}`` or ``{store: [bakery, cafe]}``); only kinds
            the role declares. Empty: unrestricted.
        read_only: refused (403 ``auth.read_only``) on every request but GET and HEAD.
        name: shown in order history, logs and audit instead of the key,
            1-64 chars ``A-Za-z0-9_.-``; default none.
    """

    key: str
    role: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "admin"
    scope: dict[
        Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")],
        Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
        | list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
    ] = {}
    read_only: bool = False
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{0,64}$")] = ""

    def scope_values(self) -> dict[str, frozenset[str]]:
        """``scope`` as a grant's: kind -> frozenset of values."""
        return {
            kind: frozenset([values] if isinstance(values, str) else values)
            for kind, values in self.scope.items()
        }


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """HTTP API access to ``/api/tenants/<id>/...``.

    Attributes:
        keys: accepted API keys (``X-API-Key`` header or ``Authorization:
            Bearer``); write them as ``${ENV_VAR}``, never inline. A plain
            string is an unscoped ``admin`` key; a mapping is an
            :class:`ApiKey` with its role, scope, ``read_only`` and name.
            Empty keys are ignored, so ``${KEY:-}`` disables key access.
    """

    keys: list[str | ApiKey] = []

    @property
    def entries(self) -> tuple[ApiKey, ...]:
        """Every non-empty key as an :class:`ApiKey` (a plain string: role ``admin``, no scope)."""
        return tuple(
            ApiKey(key=item) if isinstance(item, str) else item
            for item in self.keys
            if (item if isinstance(item, str) else item.key)
        )


class WebAppConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Telegram WebApp authentication (``X-Telegram-Init-Data``).

    Attributes:
        max_age_seconds: how old ``auth_date`` may be before the init data is
            refused, in whole seconds, 60-2592000 (default 3600, an hour: a
            leaked init data string opens the API as that user until then).
        url: the WebApp page opened by the bot's buttons, if any.
    """

    max_age_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 3600
    url: str = ""


class LimitsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rate limits of writes (``core.http.ratelimit``), in the ``limits`` library's string notation.

    A rate is ``<count>/<period>`` or ``<count> per <n> <period>`` with period
    second, minute, hour, day, month or year (``10/minute``, ``100 per 2
    hours``); several separated by ``;`` all apply (``5/second;100/hour``).
    Each is a moving window per caller, kept in the tenant's Redis.

    Attributes:
        api_writes: writes per API key (``X-API-Key``), default ``60/minute``.
        webapp_writes: writes per WebApp user (``X-Telegram-Init-Data``),
            default ``10/minute``.
        bot_writes: writing actions per Telegram user in the bot (confirming a
            booking or an order, cancelling, status buttons, admin commands
            that write), default ``20/minute``.
    """

    api_writes: str = "60/minute"
    webapp_writes: str = "10/minute"
    bot_writes: str = "20/minute"

    def __post_init__(self) -> None:
        """Parse every rate, as the limiter will.

        Raises:
            ValueError: a rate that is not in the notation or allows nothing
                (reported as ``limits: <field>: ...``).
        """
        from limits import parse_many  # imported here: the config phase does not need it otherwise

        for field in self.__struct_fields__:
            value = getattr(self, field)
            try:
                rates = parse_many(value)
            except ValueError:
                raise ValueError(
                    f"{field}: {value!r} is not a rate such as '10/minute' or '5/second;100/hour'"
                ) from None
            if any(rate.amount < 1 for rate in rates):
                raise ValueError(f"{field}: {value!r} allows no request at all; the count must be at least 1")


class TenantConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tenant file, after environment substitution.

    ``features`` and ``statuses`` hold raw blocks here;
    :func:`core.config.loader.load_tenant_text` converts each with its plugin's Struct.

    Attributes:
        id: ``[a-z][a-z0-9_]{0,39}``, unique; used in URLs and default names.
        name: human name shown in logs and /health.
        timezone: IANA zone for showing times (storage is always UTC).
        locale: language of bot texts, e.g. ``ru`` or ``en``.
        bot: the Telegram bot.
        storage: schema and Redis prefix.
        api: API keys for the HTTP API.
        webapp: WebApp init-data settings.
        limits: rate limits of writes per API key, WebApp user and bot user.
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
    limits: LimitsConfig = LimitsConfig()
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


MAX_TENANT_FILE_BYTES = 256 * 1024
"""Largest tenant file accepted, in bytes of UTF-8 (admin uploads over it get 413).
A tenant with hundreds of tables or products stays far below it."""

MAX_YAML_NODES = 20_000
"""Most YAML nodes a tenant file may expand to, counting an alias's whole subtree
each time it is used: a "billion laughs" document of a few hundred bytes
expands to hundreds of millions, which every later pass would walk."""

MAX_YAML_DEPTH = 50
"""Deepest nesting of YAML nodes (the root is depth 1, aliases expanded); tenant
files need fewer than ten levels."""


class YamlDocument:
    """A parsed YAML mapping with the line of every node, for error messages.

    Before any Python object is built, the document is refused when it is over
    :data:`MAX_TENANT_FILE_BYTES`, expands (aliases included) to more than
    :data:`MAX_YAML_NODES` nodes, contains a recursive alias, or nests deeper
    than :data:`MAX_YAML_DEPTH`; anchors and aliases within those limits work
    as YAML defines them (including ``<<`` merge keys).

    Args:
        filename: shown in errors.
        text: the YAML source.

    Raises:
        ConfigError: one issue naming the file, the line (when known) and the
            reason: invalid YAML, a limit above exceeded, a scalar PyYAML cannot
            convert (``2001-13-45``, an int of more than 4300 digits), or a
            document that is not a mapping.
    """

    def __init__(self, filename: str, text: str):
        self.filename = filename
        # len(text) is a lower bound of the UTF-8 size: skip encoding a huge text.
        size = len(text) if len(text) > MAX_TENANT_FILE_BYTES else len(text.encode("utf-8"))
        if size > MAX_TENANT_FILE_BYTES:
            raise ConfigError(
                [
                    ConfigIssue(
                        filename,
                        None,
                        "",
                        f"the file is {size} bytes; a tenant file is at most"
                        f" {MAX_TENANT_FILE_BYTES} bytes",
                    )
                ]
            )
        try:
            # Compose keeps line numbers and shares the node of an anchor with
            # its aliases, so it costs what the text costs (libyaml when available).
            self.root = yaml.compose(text, Loader=_Loader)
            if self.root is not None:
                _check_expansion(filename, text, self.root)
                self.data = _Constructor("").construct_document(self.root)
            else:
                self.data = None
        except ConfigError:
            raise
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(
                [ConfigIssue(filename, line, "", f"invalid YAML: {problem}")]
            ) from None
        except Exception as exc:
            # PyYAML's pure-Python parser recurses per nesting level (RecursionError).
            raise ConfigError(
                [ConfigIssue(filename, None, "", f"invalid YAML: {type(exc).__name__}: {exc}")]
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


class _Constructor(_Loader):  # type: ignore[misc, valid-type]
    """PyYAML's safe constructor, with the line of a scalar it cannot convert.

    SafeConstructor lets ValueError escape for scalars that match a tag's
    pattern but are no value (``2001-13-45``, ``!!float abc``, an int longer
    than Python's 4300-digit limit); here they become a ConstructorError
    carrying the node's position, like every other YAML error.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None


class _ExpansionRefused(Exception):
    """The node walk of :func:`_check_expansion` stopped at ``node``.

    Attributes:
        node: the node where a limit was passed.
        alias: ordinal (in document order, from 0) of the alias being expanded
            there, or None when the node is written out in the document.
        kind: ``recursive``, ``nodes`` or ``depth``.
    """

    def __init__(self, node: yaml.Node, alias: int | None, kind: str):
        self.node = node
        self.alias = alias
        self.kind = kind


class _ExpansionWalk:
    """Count the nodes of a composed document as construction would expand them."""

    def __init__(self) -> None:
        self.count = 0
        self.aliases_met = 0
        self.written: set[int] = set()  # ids of nodes met where they are written
        self.open: set[int] = set()  # ids of the collections enclosing the current node

    def visit(self, node: yaml.Node, depth: int, alias: int | None) -> None:
        """Walk ``node`` at ``depth``; ``alias`` is the ordinal of the alias being expanded.

        Outside an expansion, meeting a node for the second time is an alias
        (composition shares the anchor's node), and aliases are met in the
        order of their AliasEvents, which names them in the error path.
        """
        node_id = id(node)
        if alias is None:
            if node_id in self.written:
                alias = self.aliases_met
                self.aliases_met += 1
            else:
                self.written.add(node_id)
        if node_id in self.open:
            raise _ExpansionRefused(node, alias, "recursive")
        self.count += 1
        if self.count > MAX_YAML_NODES:
            raise _ExpansionRefused(node, alias, "nodes")
        if depth > MAX_YAML_DEPTH:
            raise _ExpansionRefused(node, alias, "depth")
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            return
        self.open.add(node_id)
        for child in children:
            self.visit(child, depth + 1, alias)
        self.open.discard(node_id)


def _check_expansion(filename: str, text: str, root: yaml.Node) -> None:
    """Refuse a composed document that would expand past the limits, before it is constructed.

    The walk stops at the first node over :data:`MAX_YAML_NODES` or
    :data:`MAX_YAML_DEPTH`, so it costs at most that many steps, and its
    recursion is at most :data:`MAX_YAML_DEPTH` deep.

    Raises:
        ConfigError: one issue: ``recursive alias *a``, ``alias *a expands the
            document to more than 20000 nodes``, ``alias *a nests deeper than
            50 levels`` (at the alias's line), or ``the document has more than
            20000 nodes`` / ``nesting deeper than 50 levels`` (at the node's line).
    """
    try:
        _ExpansionWalk().visit(root, 1, None)
    except _ExpansionRefused as refused:
        line = refused.node.start_mark.line + 1
        name = ""
        if refused.alias is not None:
            # Composed nodes do not remember the alias that reached them; the
            # events do, in the same order (only parsed on this error path).
            event = _alias_event(text, refused.alias)
            if event is not None:
                name, line = f"*{event.anchor}", event.start_mark.line + 1
        if refused.kind == "recursive":
            reason = f"recursive alias {name}".rstrip()
        elif refused.kind == "nodes":
            reason = (
                f"alias {name} expands the document to more than {MAX_YAML_NODES} nodes"
                if name
                else f"the document has more than {MAX_YAML_NODES} nodes"
            )
        else:
            reason = (
                f"alias {name} nests deeper than {MAX_YAML_DEPTH} levels"
                if name
                else f"nesting deeper than {MAX_YAML_DEPTH} levels"
            )
        raise ConfigError([ConfigIssue(filename, line, "", reason)]) from None


def _alias_event(text: str, ordinal: int) -> yaml.AliasEvent | None:
    """The ``ordinal``-th (from 0) alias of ``text``, in document order."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            if ordinal == 0:
                return event
            ordinal -= 1
    return None


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
            else _truncated(msgspec.json.encode(value).decode())
        )
        message = message.split(", got ")[0] + f", got {shown}"
    issue = doc.issue(base + path, message)
    return conceal_issues(doc, [issue])[0]


def substitute_env(
    doc: YamlDocument,
    value: Any,
    path: list[str | int],
    env: Mapping[str, str],
    issues: list[ConfigIssue],
    policy: EnvPolicy,
    substitutions: dict[tuple[str | int, ...], Substitution],
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of ``value``.

    Args:
        doc: the document, for locating issues.
        value: the raw YAML value at ``path``.
        path: where ``value`` is in the document.
        env: the environment to read.
        issues: problems found are appended here, each naming its field path
            and the reference, never a variable's value.
        policy: which variables this tenant file may read.
        substitutions: every string that held a reference is recorded here by
            its path, so errors and logs can name the reference instead of
            showing the value.

    Returns:
        ``value`` with the references replaced. A refused reference, or one
        whose variable is not set and has no default, is left as written.
    """
    if isinstance(value, dict):
        return {
            k: substitute_env(doc, v, [*path, str(k)], env, issues, policy, substitutions)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            substitute_env(doc, v, [*path, i], env, issues, policy, substitutions)
            for i, v in enumerate(value)
        ]
    if not (isinstance(value, str) and "${" in value):
        return value
    references: list[EnvReference] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        refusal = policy.refusal(name)
        if refusal is not None:
            # Refused even with a default: the default would hide a typo in
            # the name, and reading the variable when it is set is the leak.
            issues.append(doc.issue(path, refusal))
            return match.group(0)
        if name in env:
            references.append(EnvReference(name, env[name], from_env=True))
            return env[name]
        if default is not None:
            references.append(EnvReference(name, default, from_env=False))
            return default
        issues.append(doc.issue(path, f"environment variable {name} is not set"))
        return match.group(0)

    result = _ENV_REF.sub(replace, value)
    if references:
        substitutions[tuple(path)] = Substitution(value, tuple(references))
    return result


def parse_tenant_text(
    text: str,
    filename: str,
    env: Mapping[str, str] | None = None,
    *,
    env_allow: Iterable[str] | None = None,
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
        policy = EnvPolicy(raw_id, env_allow)
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
        shown = substitution.shown() if substitution else _truncated(repr(config.timezone))
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
        problems.extend(_demo_secret_issues(doc, data, [], config.id, listen_host))
    if problems:
        raise ConfigError(conceal_issues(doc, problems))
    return config, doc


# ------------------------------------------------------------ tenant env namespaces

RUNTIME_ENV_PREFIX = "TENANTRY_"
"""The runtime's own settings (admin token, database URL, secret key): never
readable by a tenant file, whatever ``TENANTRY_TENANT_ENV_ALLOW`` says."""

DEMO_SECRET_SUFFIXES = ("-demo-secret", "-demo-key", "-demo-token")
"""Endings of the demo values in the example tenants (``filin-demo-secret``,
``110001:filin-demo-token``): public, so only usable on a loopback address."""

RESERVED_SCHEMAS = ("public", "information_schema")
"""PostgreSQL schemas no tenant may use, besides every ``pg_*`` one: ``public``
is every database user's default, ``information_schema`` and ``pg_*`` belong
to the system (PostgreSQL docs, "Schemas": names beginning with ``pg_`` are
reserved)."""

_MAX_SHOWN_CHARS = 60


def database_names_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the extra PostgreSQL servers: ``TENANTRY_DATABASE_URL_<NAME>`` set and not empty.

    The name is ``<NAME>`` lowercased (``TENANTRY_DATABASE_URL_EU2`` is ``eu2``);
    variables whose name does not fit :data:`DATABASE_NAME_PATTERN` are ignored
    here and refused by :meth:`core.runtime.settings.RuntimeSettings.from_env`.
    """
    names = []
    for key, value in env.items():
        if key.startswith(DATABASE_URL_ENV_PREFIX) and value:
            name = key[len(DATABASE_URL_ENV_PREFIX) :].lower()
            if re.match(DATABASE_NAME_PATTERN, name) and name != DEFAULT_DATABASE:
                names.append(name)
    return tuple(sorted(names))


def parse_env_allow(text: str) -> tuple[str, ...]:
    """Split ``TENANTRY_TENANT_ENV_ALLOW`` (``SHARED_SMTP_HOST,PAYMENTS_*``) into its entries."""
    return tuple(entry.strip() for entry in text.split(",") if entry.strip())


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1`` (brackets allowed)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reserved_schema_problem(schema: str) -> str | None:
    """Why ``schema`` cannot be a tenant's schema (see :data:`RESERVED_SCHEMAS`), or None."""
    if schema in RESERVED_SCHEMAS or schema.startswith("pg_"):
        return (
            f"schema {schema!r} is reserved (public, information_schema and pg_* belong to "
            "PostgreSQL and every database user); choose a schema of this tenant's own"
        )
    return None


class EnvPolicy:
    """Which environment variables one tenant file may read.

    Its own namespace ``<ID>_*`` (``FILIN_*`` for tenant ``filin``), and the
    names or ``PREFIX_*`` patterns ops allow for every tenant; never
    ``TENANTRY_*``.

    Args:
        tenant_id: the id as written in the file.
        allow: entries of ``TENANTRY_TENANT_ENV_ALLOW``.
    """

    def __init__(self, tenant_id: str, allow: Iterable[str]):
        self.namespace = f"{tenant_id.upper()}_"
        self.allow = tuple(allow)

    def allowed_by_ops(self, name: str) -> bool:
        """True when an entry of the allow list names ``name`` or a prefix pattern matches it."""
        return any(
            name.startswith(entry[:-1]) if entry.endswith("*") else name == entry
            for entry in self.allow
        )

    def refusal(self, name: str) -> str | None:
        """Why ``${name}`` may not be read, or None when it may."""
        outside = f"${{{name}}} is outside this tenant's namespace ({self.namespace}*)"
        if name.startswith(RUNTIME_ENV_PREFIX):
            return (
                f"{outside}: TENANTRY_* variables are the runtime's own settings, "
                "never readable by a tenant file"
            )
        if name.startswith(self.namespace) or self.allowed_by_ops(name):
            return None
        return (
            f"{outside}; name it {self.namespace}..., or have ops allow it in "
            "TENANTRY_TENANT_ENV_ALLOW"
        )


class EnvReference:
    """One ``${NAME}`` or ``${NAME:-default}`` that was replaced.

    Attributes:
        name: the variable.
        value: what replaced the reference (never shown: see ``__repr__``).
        from_env: True when the variable was set, False when the default was used.
    """

    __slots__ = ("from_env", "name", "value")

    def __init__(self, name: str, value: str, *, from_env: bool):
        self.name = name
        self.value = value
        self.from_env = from_env

    def __repr__(self) -> str:
        return f"EnvReference({self.name!r}, from_env={self.from_env})"


class Substitution:
    """A string of the file that held references, as written and what they were replaced by.

    Attributes:
        template: the string as written (``"${FILIN_API_KEY}"``), safe to show.
        references: the references in it, in order.
    """

    __slots__ = ("references", "template")

    def __init__(self, template: str, references: tuple[EnvReference, ...]):
        self.template = template
        self.references = references

    def __repr__(self) -> str:
        return f"Substitution({self.template!r})"

    def shown(self) -> str:
        """How a message names the value: ``the value of ${NAME}`` (or of the template)."""
        names = [ref.name for ref in self.references]
        if len(names) == 1 and _ENV_REF.fullmatch(self.template):
            return f"the value of ${{{names[0]}}}"
        return f"the value of {_truncated(msgspec.json.encode(self.template).decode())}"


class TenantDocument(YamlDocument):
    """A tenant file's YAML document and the values its references were replaced by.

    Attributes:
        substitutions: path (``("bot", "token")``) -> the :class:`Substitution`
            made there, filled by :func:`parse_tenant_text`.
    """

    def __init__(self, filename: str, text: str):
        super().__init__(filename, text)
        self.substitutions: dict[tuple[str | int, ...], Substitution] = {}

    def shown(self, path: list[str | int], value: Any) -> str:
        """How a message shows ``value`` found at ``path``: the reference it came from,
        or the value as JSON cut to about 60 characters."""
        substitution = self.substitutions.get(tuple(path))
        if substitution is not None:
            return substitution.shown()
        return _truncated(msgspec.json.encode(value).decode())

    def referenced_values(self) -> list[str]:
        """Every value read from the environment (not defaults), longest first."""
        values = {
            ref.value
            for substitution in self.substitutions.values()
            for ref in substitution.references
            if ref.from_env and ref.value
        }
        return sorted(values, key=len, reverse=True)

    def conceal(self, text: str) -> str:
        """Replace each value read from the environment in ``text`` by its ``${NAME}``.

        A safety net for messages that quote a value themselves (a plugin's
        check, a status machine's state names); values shorter than six
        characters are left, as they would garble words and hide nothing.
        """
        names: dict[str, str] = {}
        for substitution in self.substitutions.values():
            for ref in substitution.references:
                if ref.from_env and len(ref.value) >= 6:
                    names.setdefault(ref.value, ref.name)
        for value in sorted(names, key=len, reverse=True):
            if value in text:
                text = text.replace(value, f"${{{names[value]}}}")
        return text


def conceal_issues(doc: YamlDocument, issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """``issues`` with every environment value in their reasons replaced by its reference."""
    if not isinstance(doc, TenantDocument) or not doc.substitutions:
        return issues
    return [
        ConfigIssue(issue.file, issue.line, issue.path, doc.conceal(issue.reason))
        for issue in issues
    ]


def secret_values(config: TenantConfig, doc: YamlDocument) -> tuple[str, ...]:
    """What :mod:`core.runtime.redaction` must keep out of logs for this tenant.

    The bot token (whole and its secret part), the webhook secret, the API
    keys, and every value read from the environment. The derived webhook
    secret is added when the tenant starts (:meth:`core.updates.bots.BotHub.secret_for`).
    """
    token = config.bot.token
    keys = [item if isinstance(item, str) else item.key for item in config.api.keys]
    values = [token, token.partition(":")[2], config.bot.webhook_secret, *keys]
    if isinstance(doc, TenantDocument):
        values.extend(doc.referenced_values())
    return tuple(v for v in values if v)


def _truncated(shown: str) -> str:
    """``shown`` (a quoted value) cut to about 60 characters, saying how long it was."""
    if len(shown) <= _MAX_SHOWN_CHARS:
        return shown
    quote = shown[0] if shown[0] in "\"'" and shown[-1] == shown[0] else ""
    return f"{shown[: _MAX_SHOWN_CHARS - 20]}…{quote} ({len(shown) - 2 * len(quote)} characters)"


def _demo_secret_issues(
    doc: TenantDocument, value: Any, path: list[str | int], tenant_id: str, listen_host: str
) -> list[ConfigIssue]:
    """An issue for every string of the file ending like a demo secret (:data:`DEMO_SECRET_SUFFIXES`)."""
    if isinstance(value, dict):
        return [
            issue
            for key, item in value.items()
            for issue in _demo_secret_issues(doc, item, [*path, str(key)], tenant_id, listen_host)
        ]
    if isinstance(value, list):
        return [
            issue
            for index, item in enumerate(value)
            for issue in _demo_secret_issues(doc, item, [*path, index], tenant_id, listen_host)
        ]
    if not (isinstance(value, str) and value.endswith(DEMO_SECRET_SUFFIXES)):
        return []
    substitution = doc.substitutions.get(tuple(path))
    defaulted = [r.name for r in substitution.references if not r.from_env] if substitution else []
    remedy = (
        f"set {defaulted[0]}"
        if defaulted
        else f"read a real one from the environment (${{{tenant_id.upper()}_...}})"
    )
    return [
        doc.issue(
            path,
            f"demo secret; {remedy}, or listen on a loopback address "
            f"(this runtime listens on {listen_host})",
        )
    ]
