"""Tenantry's built-in plugins, one package each; a tenant enables them under ``features:``."""
