"""Who may use ``/admin``: the ops token, and tokens scoped to some tenants.

* The ops token (``TENANTRY_ADMIN_TOKEN``) has full authority and acts as ``ops``.
* Scoped tokens, for integrators, come from a YAML file
  (``TENANTRY_ADMIN_TOKENS_FILE``) or from ``RuntimeSettings.admin_tokens``.
  The file holds only the SHA-256 of each token::

      tokens:
        - name: acme-integrator
          sha256: fd473c54308a734041e7f13b18cdf88e313ada89738be56e17e2690ab95d2f53
          tenants: [glow, "acme_*"]

  A scoped token lists, reads, adds, changes, reloads and removes only the
  tenants it names (an id, or an id prefix ending in ``*``); every other
  tenant is invisible to it (``docs/ops.md#tokens-and-what-they-can-do``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import msgspec

from core.config.model import ConfigError, ConfigIssue, YamlDocument, validation_issue

__all__ = [
    "OPS_ACTOR",
    "AdminActor",
    "AdminTokenEntry",
    "AdminTokens",
    "load_admin_tokens",
    "token_sha256",
]

OPS_ACTOR = "ops"
"""Audit name of the ops token; no scoped token may take it."""

TOKEN_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
# A tenant id (core.config.model.TENANT_ID_PATTERN), optionally cut short and ended
# by ``*``. A bare ``*`` is refused: a token for every tenant is the ops token.
TENANT_SCOPE_PATTERN = r"^[a-z][a-z0-9_]{0,39}\*?$"


class AdminTokenEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One scoped admin token, as written in the tokens file.

    Attributes:
        name: shown in the audit log as the actor, ``[a-z0-9][a-z0-9_.-]{0,63}``;
            ``ops`` is reserved for the ops token.
        sha256: hex SHA-256 of the token (64 hex digits); the token itself is
            never stored (``printf %s "$TOKEN" | sha256sum``).
        tenants: tenant ids the token may manage; an entry ending in ``*`` is a
            prefix (``acme_*`` matches ``acme_shop``), at least one entry.
    """

    name: Annotated[str, msgspec.Meta(pattern=TOKEN_NAME_PATTERN)]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{64}$")]
    tenants: Annotated[
        list[Annotated[str, msgspec.Meta(pattern=TENANT_SCOPE_PATTERN)]], msgspec.Meta(min_length=1)
    ]


class AdminTokensFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The tokens file: ``tokens``, a list of :class:`AdminTokenEntry`."""

    tokens: list[AdminTokenEntry] = []


class AdminActor(msgspec.Struct, frozen=True):
    """The token behind an ``/admin`` request, resolved once by the guard.

    Attributes:
        name: ``ops`` or the scoped token's name (the audit log's actor).
        tenants: the scope (ids and ``prefix*`` patterns); None for the ops
            token, which may manage every tenant.
    """

    name: str
    tenants: tuple[str, ...] | None = None

    @property
    def is_ops(self) -> bool:
        """True for the ops token (full authority)."""
        return self.tenants is None

    def may_manage(self, tenant_id: str) -> bool:
        """True when ``tenant_id`` is inside this actor's scope."""
        if self.tenants is None:
            return True
        return any(
            tenant_id.startswith(pattern[:-1]) if pattern.endswith("*") else tenant_id == pattern
            for pattern in self.tenants
        )

    def scope_text(self) -> str:
        """The scope for messages: ``every tenant`` or ``glow, acme_*``."""
        return "every tenant" if self.tenants is None else ", ".join(self.tenants)


def token_sha256(token: str) -> str:
    """Lower-case hex SHA-256 of ``token``'s UTF-8 bytes, as the tokens file stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_admin_tokens(path: Path) -> list[AdminTokenEntry]:
    """Read and validate a tokens file.

    Raises:
        ConfigError: unreadable file, invalid YAML, a field of the wrong shape,
            a reserved or repeated name, or a repeated hash; each issue names
            the file, line and field (``tokens[1].sha256``).
    """
    filename = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(filename, None, "", f"cannot read file: {exc}")]) from None
    try:
        doc = YamlDocument(filename, text)
    except ConfigError as exc:
        # YamlDocument words its shape error for tenant files.
        raise ConfigError(
            [
                ConfigIssue(i.file, i.line, i.path, "expected a mapping with a `tokens` list")
                if i.reason.startswith("expected a mapping")
                else i
                for i in exc.issues
            ]
        ) from None
    try:
        parsed = msgspec.convert(doc.data, AdminTokensFile, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError([validation_issue(doc, exc, [], doc.data)]) from None
    issues: list[ConfigIssue] = []
    names: set[str] = set()
    hashes: set[str] = set()
    for index, entry in enumerate(parsed.tokens):
        if entry.name == OPS_ACTOR:
            issues.append(
                doc.issue(["tokens", index, "name"], "'ops' is the name of TENANTRY_ADMIN_TOKEN")
            )
        elif entry.name in names:
            issues.append(doc.issue(["tokens", index, "name"], f"name {entry.name!r} is repeated"))
        if entry.sha256.lower() in hashes:
            issues.append(doc.issue(["tokens", index, "sha256"], "the same token is listed twice"))
        names.add(entry.name)
        hashes.add(entry.sha256.lower())
    if issues:
        raise ConfigError(issues)
    return parsed.tokens


class AdminTokens:
    """The tokens a runtime accepts on ``/admin``.

    Args:
        ops_token: ``TENANTRY_ADMIN_TOKEN``, or None.
        scoped: the scoped tokens (from the settings and the tokens file).

    Raises:
        ConfigError: two entries share a name or a hash, or one is the ops token.
    """

    def __init__(self, ops_token: str | None, scoped: Sequence[AdminTokenEntry] = ()):
        self._ops_token = ops_token or None
        self._by_hash: dict[str, AdminActor] = {}
        issues: list[ConfigIssue] = []
        names: set[str] = set()
        ops_hash = token_sha256(ops_token) if ops_token else None
        for entry in scoped:
            digest = entry.sha256.lower()
            where = f"admin token {entry.name!r}"
            if entry.name == OPS_ACTOR or entry.name in names:
                issues.append(ConfigIssue(where, None, "name", "reserved or repeated name"))
            if digest == ops_hash:
                issues.append(
                    ConfigIssue(where, None, "sha256", "the same token as TENANTRY_ADMIN_TOKEN")
                )
            if digest in self._by_hash:
                issues.append(ConfigIssue(where, None, "sha256", "the same token is listed twice"))
            names.add(entry.name)
            self._by_hash[digest] = AdminActor(entry.name, tuple(entry.tenants))
        if issues:
            raise ConfigError(issues)

    @classmethod
    def from_settings(
        cls, ops_token: str | None, entries: Iterable[AdminTokenEntry], path: Path | None
    ) -> AdminTokens:
        """Gather the ops token, ``entries`` and the tokens file at ``path`` (when given).

        Raises:
            ConfigError: see :func:`load_admin_tokens` and the class.
        """
        scoped = list(entries)
        if path is not None:
            scoped.extend(load_admin_tokens(path))
        return cls(ops_token, scoped)

    @property
    def enabled(self) -> bool:
        """False when no token is configured at all (the admin API answers 401)."""
        return bool(self._ops_token or self._by_hash)

    def resolve(self, presented: str) -> AdminActor | None:
        """The actor of a presented bearer token, or None when no token matches.

        The ops token is compared in constant time; a scoped token is found by
        the SHA-256 of what was presented, which tells a timing observer
        nothing about the stored hashes' preimages.
        """
        if not presented:
            return None
        if self._ops_token and hmac.compare_digest(presented.encode(), self._ops_token.encode()):
            return AdminActor(OPS_ACTOR)
        return self._by_hash.get(token_sha256(presented))
