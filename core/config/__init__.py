"""Tenant files: YAML under a budget, environment references, validation against the plugins, the JSON Schema."""
