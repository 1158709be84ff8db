"""Docs stay in step with the code: every hookspec and every tenant field is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import msgspec
import pytest

from core import hookspecs
from core.config.model import ApiConfig, BotConfig, StorageConfig, TenantConfig, WebAppConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKSPECS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "tenantry_spec")
)


def test_there_are_hookspecs():
    assert {"register_settings", "register_routers", "on_event", "on_tenant_started"} <= set(
        HOOKSPECS
    )


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_is_documented(hook):
    text = (DOCS / "hooks.md").read_text()
    assert re.search(rf"^### `{hook}`$", text, re.MULTILINE), (
        f"docs/hooks.md lacks a '### `{hook}`' section"
    )


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_has_a_docstring(hook):
    assert len(inspect.getdoc(getattr(hookspecs, hook)) or "") > 80


@pytest.mark.parametrize(
    ("prefix", "struct"),
    [
        ("", TenantConfig),
        ("bot.", BotConfig),
        ("storage.", StorageConfig),
        ("api.", ApiConfig),
        ("webapp.", WebAppConfig),
    ],
)
def test_every_tenant_field_is_in_the_yaml_reference(prefix, struct):
    text = (DOCS / "tenant-yaml.md").read_text()
    for field in msgspec.structs.fields(struct):
        assert f"`{prefix}{field.name}`" in text, (
            f"docs/tenant-yaml.md lacks `{prefix}{field.name}`"
        )
