"""The realtime plugin: a tenant's domain events pushed live over WebSockets, and signed webhooks.

See ``docs/plugins/realtime.md`` for the protocol and settings.
"""

__all__: list[str] = []
