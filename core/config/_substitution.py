"""``${VAR}`` references: which a tenant may read, their substitution, and keeping values unseen."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from core.config._document import ConfigIssue, YamlDocument
from core.config._spec import (
    DATABASE_NAME_PATTERN,
    DATABASE_URL_ENV_PREFIX,
    DEFAULT_DATABASE,
    TenantConfig,
)

__all__ = [
    "DEMO_SECRET_SUFFIXES",
    "RUNTIME_ENV_PREFIX",
    "EnvPolicy",
    "EnvReference",
    "Substitution",
    "TenantDocument",
    "conceal_issues",
    "database_names_from_env",
    "demo_secret_issues",
    "is_loopback_host",
    "parse_env_allow",
    "secret_values",
    "substitute_env",
    "truncate_shown",
]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _references(text: str) -> list[tuple[int, int, str, str | None]]:
    """Every ``${NAME}`` and ``${NAME:-default}`` in ``text``, left to right.

    What ``re.finditer(r"\\$\\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\\}", text)``
    finds (a default ends at the first ``}`` and never spans a line), found
    in time linear in ``len(text)``. That regular expression rescans the rest
    of the line from every ``${`` whose default is never closed, so one line
    of 32,000 ``${A:-`` (160 KB, under the file size limit) took 114 s, with
    the GIL held: the event loop stopped although parsing runs in a thread.
    Here the next ``}`` and the next line end are looked up once and reused
    until a reference passes them.

    Returns:
        ``(start, end, name, default)`` per reference: ``text[start:end]`` is
        the reference, ``default`` None when it has none.
    """
    found: list[tuple[int, int, str, str | None]] = []
    close = newline = -1  # the next "}" and "\n" at or after the last lookup; len(text): none
    position = 0
    while (start := text.find("${", position)) >= 0:
        name = _ENV_NAME.match(text, start + 2)
        position = start + 1
        if name is None:
            continue
        after = name.end()
        if text.startswith("}", after):
            found.append((start, after + 1, name.group(), None))
            position = after + 1
        elif text.startswith(":-", after):
            if close < after:
                close = text.find("}", after)
                close = len(text) if close < 0 else close
            if newline < after:
                newline = text.find("\n", after)
                newline = len(text) if newline < 0 else newline
            if close < newline:  # closed on its own line
                found.append((start, close + 1, name.group(), text[after + 2 : close]))
                position = close + 1
    return found


RUNTIME_ENV_PREFIX = "TENANTRY_"
"""The runtime's own settings (admin token, database URL, secret key): never
readable by a tenant file, whatever ``TENANTRY_TENANT_ENV_ALLOW`` says."""

DEMO_SECRET_SUFFIXES = ("-demo-secret", "-demo-key", "-demo-token")
"""Endings of the demo values in the example tenants (``filin-demo-secret``,
``110001:filin-demo-token``): public, so only usable on a loopback address."""

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


SECRET_FIELDS = (("bot", "token"), ("bot", "webhook_secret"))
"""Fields holding a tenant's credentials, besides each ``api.keys`` entry (and its ``key``)."""


def is_secret_field(path: Sequence[str | int]) -> bool:
    """True for the path of a credential: ``bot.token``, ``bot.webhook_secret``, an API key."""
    path = tuple(path)
    if path in SECRET_FIELDS:
        return True
    return (
        len(path) in (3, 4)
        and path[:2] == ("api", "keys")
        and isinstance(path[2], int)
        and path[3:] in ((), ("key",))
    )


class EnvPolicy:
    """Which environment variables one tenant file may read.

    Its own namespace ``<ID>_*`` (``FILIN_*`` for tenant ``filin``), and the
    names or ``PREFIX_*`` patterns ops allow for every tenant; never
    ``TENANTRY_*``.

    Args:
        tenant_id: the id as written in the file.
        allow: entries of ``TENANTRY_TENANT_ENV_ALLOW``.
        secrets_only: references are read only in the fields that hold the
            tenant's credentials (:data:`SECRET_FIELDS`), whose values are never
            shown: a file uploaded with a scoped admin token, whose holder must
            not get the variables ops provisioned (``texts.welcome:
            ${ACME_BOT_TOKEN}`` would make the bot send its own token).
    """

    def __init__(self, tenant_id: str, allow: Iterable[str], *, secrets_only: bool = False):
        self.namespace = f"{tenant_id.upper()}_"
        self.allow = tuple(allow)
        self.secrets_only = secrets_only

    def allowed_by_ops(self, name: str) -> bool:
        """True when an entry of the allow list names ``name`` or a prefix pattern matches it."""
        return any(
            name.startswith(entry[:-1]) if entry.endswith("*") else name == entry
            for entry in self.allow
        )

    def refusal(self, name: str, path: Sequence[str | int] = ()) -> str | None:
        """Why ``${name}`` at ``path`` may not be read, or None when it may."""
        if self.secrets_only and not is_secret_field(path):
            return (
                f"${{{name}}}: a file uploaded with a scoped admin token reads the "
                "environment only in bot.token, bot.webhook_secret and api.keys"
            )
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
        spans = _references(self.template)
        if len(names) == 1 and len(spans) == 1 and spans[0][:2] == (0, len(self.template)):
            return f"the value of ${{{names[0]}}}"
        return f"the value of {truncate_shown(msgspec.json.encode(self.template).decode())}"


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
        return truncate_shown(msgspec.json.encode(value).decode())

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

    def replacement(name: str, default: str | None, written: str) -> str:
        refusal = policy.refusal(name, path)
        if refusal is not None:
            # Refused even with a default: the default would hide a typo in
            # the name, and reading the variable when it is set is the leak.
            issues.append(doc.issue(path, refusal))
            return written
        if name in env:
            references.append(EnvReference(name, env[name], from_env=True))
            return env[name]
        if default is not None:
            references.append(EnvReference(name, default, from_env=False))
            return default
        issues.append(doc.issue(path, f"environment variable {name} is not set"))
        return written

    pieces: list[str] = []
    written_up_to = 0
    for start, end, name, default in _references(value):
        pieces.append(value[written_up_to:start])
        pieces.append(replacement(name, default, value[start:end]))
        written_up_to = end
    pieces.append(value[written_up_to:])
    result = "".join(pieces)
    if references:
        substitutions[tuple(path)] = Substitution(value, tuple(references))
    return result


def truncate_shown(shown: str) -> str:
    """``shown`` (a quoted value) cut to about 60 characters, saying how long it was."""
    if len(shown) <= _MAX_SHOWN_CHARS:
        return shown
    quote = shown[0] if shown[0] in "\"'" and shown[-1] == shown[0] else ""
    return f"{shown[: _MAX_SHOWN_CHARS - 20]}…{quote} ({len(shown) - 2 * len(quote)} characters)"


def demo_secret_issues(
    doc: TenantDocument, value: Any, path: list[str | int], tenant_id: str, listen_host: str
) -> list[ConfigIssue]:
    """An issue for every string of the file ending like a demo secret (:data:`DEMO_SECRET_SUFFIXES`)."""
    if isinstance(value, dict):
        return [
            issue
            for key, item in value.items()
            for issue in demo_secret_issues(doc, item, [*path, str(key)], tenant_id, listen_host)
        ]
    if isinstance(value, list):
        return [
            issue
            for index, item in enumerate(value)
            for issue in demo_secret_issues(doc, item, [*path, index], tenant_id, listen_host)
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
