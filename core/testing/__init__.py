"""Test support for Tenantry: a Bot API stand-in and real-shaped Telegram updates."""
