"""The runtime's lifecycle: settings, the plugin manager, tenants and their registry, the control schema, logging."""
