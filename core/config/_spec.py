"""The tenant spec Structs (bot, storage, api, webapp, limits) and the rules of their names."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

__all__ = [
    "DATABASE_NAME_PATTERN",
    "DATABASE_URL_ENV_PREFIX",
    "DEFAULT_DATABASE",
    "RESERVED_SCHEMAS",
    "SCHEMA_PATTERN",
    "TENANT_ID_PATTERN",
    "ApiConfig",
    "ApiKey",
    "BotConfig",
    "LimitsConfig",
    "StorageConfig",
    "TenantConfig",
    "WebAppConfig",
    "reserved_schema_problem",
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

RESERVED_SCHEMAS = ("public", "information_schema")
"""PostgreSQL schemas no tenant may use, besides every ``pg_*`` one: ``public``
is every database user's default, ``information_schema`` and ``pg_*`` belong
to the system (PostgreSQL docs, "Schemas": names beginning with ``pg_`` are
reserved)."""


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
        url: the WebApp the bot's menu button opens (Bot API setChatMenuButton,
            text ``webapp.menu_button``): an ``https://`` URL, or a path such as
            ``/web/<id>/booking/app`` joined to ``TENANTRY_PUBLIC_URL`` when that
            is HTTPS (Telegram opens WebApps over HTTPS only). Empty: no button.
    """

    max_age_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 3600
    url: Annotated[str, msgspec.Meta(pattern=r"^(|https://[^\s]{1,2000}|/[^\s]{0,2000})$")] = ""


_Rate = Annotated[str, msgspec.Meta(max_length=100)]
"""A rate in the ``limits`` notation; at most 100 characters, since its parser
is quadratic in the length of what it cannot read."""


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

    api_writes: _Rate = "60/minute"
    webapp_writes: _Rate = "10/minute"
    bot_writes: _Rate = "20/minute"

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
                raise ValueError(
                    f"{field}: {value!r} allows no request at all; the count must be at least 1"
                )


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


def reserved_schema_problem(schema: str) -> str | None:
    """Why ``schema`` cannot be a tenant's schema (see :data:`RESERVED_SCHEMAS`), or None."""
    if schema in RESERVED_SCHEMAS or schema.startswith("pg_"):
        return (
            f"schema {schema!r} is reserved (public, information_schema and pg_* belong to "
            "PostgreSQL and every database user); choose a schema of this tenant's own"
        )
    return None
