"""The Bot API update protocol: bots and polling, the dedupe ledger, per-tenant update metrics."""
