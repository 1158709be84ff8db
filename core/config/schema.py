"""JSON Schema of a tenant file, from msgspec, with each plugin's settings Struct."""

from __future__ import annotations

from typing import Any

import msgspec
import pluggy

from core.config.model import TenantConfig
from core.runtime.contributions import contributions_of
from core.storage.statuses import StatusMachineSpec

__all__ = ["tenant_json_schema"]


def tenant_json_schema(pm: pluggy.PluginManager) -> dict[str, Any]:
    """Return a JSON Schema (draft 2020-12) for ``tenants/<id>.yaml``.

    ``features`` gets one property per installed plugin, typed by that plugin's
    settings Struct; ``statuses`` entries follow :class:`StatusMachineSpec`.
    """
    table = contributions_of(pm)
    plugins = [n for n in table.names if n in table.features]
    structs = {name: table.settings.get(name) for name in plugins}
    types = [TenantConfig, StatusMachineSpec, *[s for s in structs.values() if s is not None]]
    (schemas, components) = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    _, machine_schema, *setting_schemas = schemas
    iterator = iter(setting_schemas)
    feature_props: dict[str, Any] = {}
    for name in plugins:
        feature_props[name] = (
            next(iterator) if structs[name] is not None else {"type": ["object", "null"]}
        )
    root = dict(components["TenantConfig"])
    root["properties"] = dict(root["properties"])
    root["properties"]["features"] = {
        "type": "object",
        "description": "Each key enables one plugin; its value is that plugin's settings.",
        "properties": feature_props,
        "additionalProperties": False,
    }
    root["properties"]["statuses"] = {
        "type": "object",
        "description": "Entity -> status machine override.",
        "additionalProperties": machine_schema,
    }
    defs = {k: v for k, v in components.items() if k != "TenantConfig"}
    root["title"] = "Tenantry tenant file"
    root["description"] = (
        "tenants/<id>.yaml: one tenant of a Tenantry runtime (see docs/tenant-yaml.md)."
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **root, "$defs": defs}
