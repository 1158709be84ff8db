"""Validate a tenant file against the installed plugins, and a set of tenants against each other."""

from __future__ import annotations

import bisect
import hashlib
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec
import pluggy

from core.config._convert import convert_reporting_all
from core.config.model import (
    ConfigError,
    ConfigIssue,
    TenantConfig,
    YamlDocument,
    conceal_issues,
    parse_tenant_text,
    secret_values,
    validation_issue,
)
from core.runtime.contributions import Contributions, contributions_of
from core.runtime.plugins import CORE_PLUGIN
from core.storage.statuses import StatusEntity, StatusMachine, StatusMachineSpec

__all__ = [
    "TENANT_FILE_SUFFIXES",
    "TenantSpec",
    "check_tenant_set",
    "load_tenant_file",
    "load_tenant_text",
]

TENANT_FILE_SUFFIXES = (".yaml", ".yml")
"""Suffixes of tenant files in the tenants folder (``tenantry run`` and ``tenantry check``)."""


class TenantSpec(msgspec.Struct, frozen=True):
    """A fully validated tenant, ready to start.

    Attributes:
        config: the core part of the file.
        features: enabled plugin names, ``core`` first, then in file order.
        settings: plugin name -> validated settings Struct (None without settings).
        machines: entity -> validated StatusMachine (defaults plus overrides).
        texts: locale -> key -> text, merged from the enabled plugins.
        source: the file (or ``<admin upload>``).
        source_hash: SHA-256 of the text, to skip reloading an unchanged file.
        secrets: values :mod:`core.runtime.redaction` keeps out of logs once the
            tenant starts (:func:`core.config.model.secret_values`).
        text: the file's YAML as read (``${...}`` references unresolved), for
            the audit log's diff (:mod:`core.runtime.audit`, which masks inline secrets).
    """

    config: TenantConfig
    features: tuple[str, ...]
    settings: dict[str, msgspec.Struct | None]
    machines: dict[str, StatusMachine]
    texts: dict[str, dict[str, str]]
    source: str
    source_hash: str
    secrets: tuple[str, ...] = ()
    text: str = ""


def load_tenant_file(
    path: Path,
    pm: pluggy.PluginManager,
    env: Mapping[str, str] | None = None,
    *,
    env_allow: Iterable[str] | None = None,
    listen_host: str = "127.0.0.1",
    databases: Iterable[str] | None = None,
) -> TenantSpec:
    """Read and validate ``path``; ``env``, ``env_allow``, ``listen_host`` and ``databases`` as in
    :func:`core.config.model.parse_tenant_text`.

    Raises:
        ConfigError: every problem found, each naming file, line and field.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read file: {exc}")]) from None
    return load_tenant_text(
        text,
        str(path),
        pm,
        env,
        env_allow=env_allow,
        listen_host=listen_host,
        databases=databases,
    )


def load_tenant_text(
    text: str,
    filename: str,
    pm: pluggy.PluginManager,
    env: Mapping[str, str] | None = None,
    *,
    env_allow: Iterable[str] | None = None,
    env_secrets_only: bool = False,
    listen_host: str = "127.0.0.1",
    databases: Iterable[str] | None = None,
) -> TenantSpec:
    """Validate tenant YAML ``text`` (named ``filename`` in errors) against the plugins in ``pm``.

    Checks, in order: YAML syntax, core fields and env vars, unknown feature
    names, each feature's settings Struct, status machine overrides (unknown
    entity, unknown or unreachable states, bad renames).

    The feature and status sections are checked as a whole: every problem of
    every block is reported, each at its own line (a bad weekday at its key,
    ``items[3].price`` at that item; see :mod:`core.config._convert`), and none that
    only follows from another one: a feature whose settings failed still
    declares its status entities, and a misspelt state is reported once where
    it is written (see :meth:`core.storage.statuses.StatusMachine.problems`).

    Raises:
        ConfigError: all problems found in the feature and status sections
            together; earlier stages (YAML, core fields) stop at their first problem.
    """
    config, doc = parse_tenant_text(
        text,
        filename,
        env,
        env_allow=env_allow,
        env_secrets_only=env_secrets_only,
        listen_host=listen_host,
        databases=databases,
    )
    try:
        features, settings, machines, table = _check_features(config, doc, pm)
    except ConfigError:
        raise
    except Exception as exc:
        # A plugin's check with a bug: its text and traceback may quote a value
        # read from the environment, which is named by its reference instead.
        issue = ConfigIssue(filename, None, "", f"could not be loaded: {type(exc).__name__}: {exc}")
        trace = ConfigIssue(filename, None, "", "".join(traceback.format_exception(exc)))
        issue, trace = conceal_issues(doc, [issue, trace])
        # Not logged here: `tenantry check` prints the issue alone; the runtime
        # logs the trace (core.runtime._loading.load_guarded, the admin API).
        raise ConfigError([issue], trace=trace.reason) from None
    texts: dict[str, dict[str, str]] = {}
    for feature in features:
        for locale, entries in table.texts.get(feature, {}).items():
            texts.setdefault(locale, {}).update(entries)
    return TenantSpec(
        config=config,
        features=features,
        settings=settings,
        machines=machines,
        texts=texts,
        source=filename,
        source_hash=hashlib.sha256(text.encode()).hexdigest(),
        secrets=secret_values(config, doc),
        text=text,
    )


def _check_features(
    config: TenantConfig, doc: YamlDocument, pm: pluggy.PluginManager
) -> tuple[
    tuple[str, ...], dict[str, msgspec.Struct | None], dict[str, StatusMachine], Contributions
]:
    """The feature, API-key and status checks of :func:`load_tenant_text`.

    Returns:
        ``(features, settings, machines, contributions)``.

    Raises:
        ConfigError: every problem found (environment values concealed).
    """
    issues: list[ConfigIssue] = []
    table = contributions_of(pm)
    known = set(table.features)
    settings: dict[str, msgspec.Struct | None] = {CORE_PLUGIN: None}
    enabled = [CORE_PLUGIN]
    unknown_features = False
    for feature, raw in config.features.items():
        if feature not in known:
            unknown_features = True
            choices = ", ".join(sorted(known)) or "none installed"
            issues.append(
                doc.issue(
                    ["features", feature], f"unknown plugin {feature!r} (available: {choices})"
                )
            )
            continue
        enabled.append(feature)
        struct = table.settings.get(feature)
        if struct is None:
            settings[feature] = None
            continue
        block = {} if raw is None else raw
        value, problems = convert_reporting_all(doc, block, struct, ["features", feature])
        settings[feature] = value
        issues.extend(problems)
    features = tuple(enabled)
    issues.extend(_api_key_issues(config, doc, table))
    machines = _load_machines(config, features, pm, doc, issues, unknown_features)
    if not issues:
        # Only on settings and machines that are sound in themselves.
        for feature in features:
            value = settings.get(feature)
            if value is None:
                continue
            for problems in table.hooks_for((feature,)).check_settings(
                settings=value, machines=machines
            ):
                for path, reason in problems or ():
                    issues.append(doc.issue(["features", feature, *path], reason))
    if issues:
        # In file order, as an editor shows them (cross-field checks come last otherwise).
        issues.sort(key=lambda issue: issue.line or 0)
        # Plugins' own checks may quote a value; one read from the environment is named instead.
        raise ConfigError(conceal_issues(doc, issues))
    return features, settings, machines, table


def _api_key_issues(
    config: TenantConfig, doc: YamlDocument, table: Contributions
) -> list[ConfigIssue]:
    """Problems of the ``api.keys`` mappings: a role no plugin declares, a scope kind its role lacks.

    Roles are those of every installed plugin (``register_roles``), enabled
    or not, so a key may be written before its plugin is enabled. No message
    shows a key's value: only its position, role and scope kinds.
    """
    roles = table.role_table
    issues: list[ConfigIssue] = []
    for index, item in enumerate(config.api.keys):
        if isinstance(item, str):
            continue
        role = roles.get(item.role)
        if role is None:
            known = ", ".join(sorted(roles)) or "none"
            issues.append(
                doc.issue(
                    ["api", "keys", index, "role"],
                    f"unknown role {item.role!r} (declared by the installed plugins: {known})",
                )
            )
            continue
        for kind in item.scope:
            if kind not in role.scopes:
                declared = ", ".join(role.scopes) or "none"
                issues.append(
                    doc.issue(
                        ["api", "keys", index, "scope", kind],
                        f"role {role.name!r} has no scope kind {kind!r} (it declares: {declared})",
                    )
                )
    return issues


def _load_machines(
    config: TenantConfig,
    features: tuple[str, ...],
    pm: pluggy.PluginManager,
    doc: YamlDocument,
    issues: list[ConfigIssue],
    unknown_features: bool = False,
) -> dict[str, StatusMachine]:
    """Validate the status machines of the enabled ``features``, appending problems to ``issues``.

    Args:
        config: the tenant file's core part (``statuses`` still raw).
        features: enabled, installed plugins, including those whose settings failed.
        pm: the plugin manager.
        doc: the parsed file, for line numbers.
        issues: where problems are appended.
        unknown_features: an unknown plugin name was reported; an override of an
            entity no enabled plugin declares is then taken for a consequence
            of that (a misspelt feature) and not reported again.

    Returns:
        entity -> StatusMachine for each entity whose machine is valid.
    """
    table = contributions_of(pm)
    entities: dict[str, StatusEntity] = {}
    for feature in features:
        for entity in table.status_entities.get(feature, ()):
            entities[entity.name] = entity
    for name in config.statuses:
        if name in entities or unknown_features:
            continue
        owner = next(
            (
                plugin
                for plugin in table.names
                if plugin not in features
                for entity in table.status_entities.get(plugin, ())
                if entity.name == name
            ),
            None,
        )
        choices = ", ".join(sorted(entities)) or "none for the enabled features"
        reason = f"no entity {name!r} has statuses (known: {choices})"
        if owner is not None:
            reason += f"; plugin {owner!r} declares it but is not enabled under features"
        issues.append(doc.issue(["statuses", name], reason))
    machines: dict[str, StatusMachine] = {}
    for name, entity in entities.items():
        spec = entity.default
        override = config.statuses.get(name)
        if override is not None:
            try:
                spec = msgspec.convert(override, StatusMachineSpec, strict=True)
            except msgspec.ValidationError as exc:
                issues.append(validation_issue(doc, exc, ["statuses", name], override))
                continue
        machine = StatusMachine(entity, spec)
        problems = machine.problems()
        issues.extend(doc.issue(["statuses", name, *path], reason) for path, reason in problems)
        if not problems:
            machines[name] = machine
    return machines


def check_tenant_set(specs: Iterable[TenantSpec]) -> list[ConfigIssue]:
    """Find clashes between tenants: duplicate ids, schemas, bots, or overlapping Redis prefixes.

    Two prefixes overlap when one starts with the other (``a:`` and ``a:b:``):
    the longer tenant's keys would be visible under the shorter one's.

    Returns:
        One issue per clash, located in the later file.
    """
    issues: list[ConfigIssue] = []
    seen_ids: dict[str, str] = {}
    seen_schemas: dict[tuple[str, str], str] = {}
    seen_bots: dict[int, str] = {}
    prefixes = _Prefixes()
    for spec in specs:
        config = spec.config
        if config.id in seen_ids:
            issues.append(
                ConfigIssue(
                    spec.source,
                    None,
                    "id",
                    f"duplicate tenant id {config.id!r} (also in {seen_ids[config.id]})",
                )
            )
            continue
        seen_ids[config.id] = spec.source
        # A schema name is one tenant's on each server (storage.database).
        placed_schema = (config.storage.database, config.schema)
        if placed_schema in seen_schemas:
            issues.append(
                ConfigIssue(
                    spec.source,
                    None,
                    "storage.schema",
                    f"schema {config.schema!r} is already used by {seen_schemas[placed_schema]}",
                )
            )
        seen_schemas[placed_schema] = spec.source
        bot_id = config.bot.bot_id
        if bot_id in seen_bots:
            issues.append(
                ConfigIssue(
                    spec.source,
                    None,
                    "bot.token",
                    f"bot {bot_id} is already served for {seen_bots[bot_id]}",
                )
            )
        seen_bots[bot_id] = spec.source
        for other_prefix, other_source in prefixes.overlapping(config.redis_prefix):
            issues.append(
                ConfigIssue(
                    spec.source,
                    None,
                    "storage.redis_prefix",
                    f"Redis prefix {config.redis_prefix!r} overlaps {other_prefix!r} of {other_source}",
                )
            )
        prefixes.add(config.redis_prefix, spec.source)
    return issues


class _Prefixes:
    """Redis prefixes seen so far, to find those overlapping a new one without comparing every pair.

    A prefix ``q`` overlaps ``p`` when one starts with the other. The ``q``
    that ``p`` starts with are among ``p``'s own prefixes (looked up in a
    dict, ``len(p)`` lookups); the ``q`` that start with ``p`` sort right
    after ``p`` (found with a binary search). With 10,000 tenants this is
    milliseconds, where comparing every pair took seconds.
    """

    def __init__(self) -> None:
        self._sources: dict[str, list[tuple[int, str]]] = {}
        self._sorted: list[str] = []
        self._count = 0

    def overlapping(self, prefix: str) -> list[tuple[str, str]]:
        """``(prefix, source)`` of every prefix seen that overlaps ``prefix``, in the order seen."""
        found: list[tuple[int, str, str]] = []
        for end in range(1, len(prefix) + 1):
            for order, source in self._sources.get(prefix[:end], ()):
                found.append((order, prefix[:end], source))
        index = bisect.bisect_left(self._sorted, prefix)
        while index < len(self._sorted) and self._sorted[index].startswith(prefix):
            other = self._sorted[index]
            if other != prefix:  # equal ones were found above
                found.extend((order, other, source) for order, source in self._sources[other])
            index += 1
        return [(other, source) for _, other, source in sorted(found)]

    def add(self, prefix: str, source: str) -> None:
        """Remember ``prefix`` of the file ``source``."""
        if prefix not in self._sources:
            self._sources[prefix] = []
            bisect.insort(self._sorted, prefix)
        self._sources[prefix].append((self._count, source))
        self._count += 1
