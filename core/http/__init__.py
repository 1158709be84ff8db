"""The HTTP surface: the Litestar app, webhook mount, health and admin API, guards, idempotency, limits."""
