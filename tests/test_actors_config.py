"""Scoped API keys in the tenant YAML: validation against declared roles, secrets, the audit mask."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.actors import Actor, Grant, merge_grants
from core.config.loader import load_tenant_file, load_tenant_text
from core.config.model import ConfigError
from core.runtime.audit import mask_secrets
from core.runtime.contributions import contributions_of
from core.runtime.plugins import build_plugin_manager
from core.runtime.redaction import forget_secrets, redact, register_secrets

ROOT = Path(__file__).resolve().parents[1]

MARKET = """\
id: market
bot:
  token: "123:abc"
api:
  keys:
    - "${MARKET_API_KEY}"
    - key: "${MARKET_BAKERY_KEY}"
      role: ROLE
      scope: SCOPE
      name: bakery-panel
    - {key: "${MARKET_REPORTS_KEY}", read_only: true}
features:
  orders: {}
"""

ENV = {
    "MARKET_API_KEY": "admin-key-0123456789",
    "MARKET_BAKERY_KEY": "bakery-key-0123456789",
    "MARKET_REPORTS_KEY": "reports-key-0123456789",
}


@pytest.fixture(scope="module")
def pm():
    return build_plugin_manager(entry_points=False)


def market(role: str = "partner", scope: str = "{store: bakery}") -> str:
    return MARKET.replace("ROLE", role).replace("SCOPE", scope)


def problems(text: str, pm) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_tenant_text(text, "tenants/market.yaml", pm, ENV)
    return [str(issue) for issue in caught.value.issues]


def test_plain_and_scoped_keys_load_as_entries(pm):
    spec = load_tenant_text(market(scope="{store: [bakery, cafe]}"), "tenants/market.yaml", pm, ENV)
    plain, bakery, reports = spec.config.api.entries
    assert (plain.key, plain.role, plain.scope, plain.read_only) == (
        ENV["MARKET_API_KEY"],
        "admin",
        {},
        False,
    )
    assert (bakery.role, bakery.scope_values(), bakery.name) == (
        "partner",
        {"store": frozenset({"bakery", "cafe"})},
        "bakery-panel",
    )
    assert (reports.role, reports.read_only) == ("admin", True)
    # Every key, plain or a mapping's, is a secret kept out of logs.
    assert set(ENV.values()) <= set(spec.secrets)


def test_unknown_role_names_file_line_and_field_without_the_key(pm):
    issues = problems(market(role="baker"), pm)
    [issue] = issues
    assert issue.startswith(
        "tenants/market.yaml:8: api.keys[1].role: unknown role 'baker' (declared by the "
        "installed plugins: admin, customer, "
    )
    assert "partner" in issue
    assert not any(value in issue for issue in issues for value in ENV.values())


def test_scope_kind_the_role_does_not_declare_is_an_error(pm):
    assert problems(market(scope="{table: [t1]}"), pm) == [
        "tenants/market.yaml:9: api.keys[1].scope.table: role 'partner' has no scope kind "
        "'table' (it declares: store)"
    ]
    # admin declares no scope kind at all
    assert problems(market(role="admin"), pm) == [
        "tenants/market.yaml:9: api.keys[1].scope.store: role 'admin' has no scope kind "
        "'store' (it declares: none)"
    ]


def test_a_malformed_key_entry_is_reported_at_its_field_without_its_value(pm):
    text = market().replace("name: bakery-panel", "name: bakery-panel\n      colour: red")
    issues = problems(text, pm)
    assert len(issues) == 1 and issues[0].startswith("tenants/market.yaml:")
    assert "api.keys[1]" in issues[0] and "colour" in issues[0]
    assert not any(value in issues[0] for value in ENV.values())


def test_the_example_marketplace_has_partner_and_read_only_keys(pm):
    spec = load_tenant_file(ROOT / "tenants" / "market.yaml", pm, {})
    keys = {entry.name: entry for entry in spec.config.api.entries}
    assert keys["bakery-panel"].scope_values() == {"store": frozenset({"bakery"})}
    assert keys["flowers-panel"].scope_values() == {"store": frozenset({"flowers"})}
    assert keys["reports"].read_only
    # Their demo defaults are usable on loopback only, like every demo secret.
    with pytest.raises(ConfigError) as caught:
        load_tenant_file(ROOT / "tenants" / "market.yaml", pm, {}, listen_host="0.0.0.0")
    flagged = [issue.path for issue in caught.value.issues]
    assert {"api.keys[1].key", "api.keys[2].key", "api.keys[3].key"} <= set(flagged)


def test_scoped_key_values_are_redacted_and_masked_in_audit_diffs(pm):
    spec = load_tenant_text(market(), "tenants/market.yaml", pm, ENV)
    owner = object()
    register_secrets(owner, spec.secrets)
    try:
        assert redact(f"key {ENV['MARKET_BAKERY_KEY']} leaked") == "key [redacted] leaked"
    finally:
        forget_secrets(owner)
    inline = textwrap.dedent(
        """\
        id: market
        api:
          keys:
            - plain-inline-secret
            - {key: bakery-inline-secret, role: partner, scope: {store: bakery}}
            - key: "${MARKET_REPORTS_KEY}"
              read_only: true
        """
    )
    masked = mask_secrets(inline, b"audit-key")
    assert masked is not None
    assert "plain-inline-secret" not in masked and "bakery-inline-secret" not in masked
    assert "role: partner" in masked and "${MARKET_REPORTS_KEY}" in masked


def test_roles_of_every_plugin_are_merged_into_one_table(pm):
    table = contributions_of(pm).role_table
    assert {"admin", "customer", "system", "partner"} <= set(table)
    assert table["partner"].scopes == ("store",)
    assert set(contributions_of(pm).roles) >= {"core", "booking", "orders"}


def test_grants_merge_per_role_in_precedence_order():
    merged = merge_grants(
        [
            Grant("customer"),
            Grant("partner", {"store": frozenset({"bakery"})}),
            Grant("admin"),
            Grant("partner", {"store": frozenset({"flowers"})}),
        ]
    )
    assert [g.role for g in merged] == ["admin", "partner", "customer"]
    actor = Actor(via="bot", grants=merged, user_id=7)
    assert actor.scope_of("partner", "store") == {"bakery", "flowers"}
    assert actor.allows("partner", "store", "flowers") and not actor.allows("partner", "store", "x")
    assert actor.role_for(["customer", "partner"]) == "partner"
    assert actor.scope_of("staff", "store") == frozenset()
    # A grant unrestricted in a kind widens a restricted one.
    wide = merge_grants([Grant("partner", {"store": frozenset({"bakery"})}), Grant("partner")])
    assert Actor(via="bot", grants=wide).scope_of("partner", "store") is None
