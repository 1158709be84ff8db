"""Known secrets of the process, and their removal from log lines and shown texts.

Each owner (a running tenant, the runtime) registers the secret values it
holds: bot tokens, API keys, webhook secrets, every value a tenant file read
from the environment, the admin token, the database password, the secret key.
:func:`redact` replaces each of them with ``[redacted]`` wherever it occurs in
a text, and every Bot API token in a URL-like form (``bot<id>:<secret>``, as
in ``https://api.telegram.org/bot<id>:<secret>/sendMessage``) with
``bot<id>:[redacted]``, known or not. :func:`redact_event` is the structlog
processor that does it for log lines (see :mod:`core.runtime.logging`).

Values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored: they
would garble ordinary words, and nothing that short is a credential.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "forget_secrets",
    "redact",
    "redact_event",
    "redact_value",
    "register_secrets",
    "runtime_secrets",
]

MIN_SECRET_LENGTH = 6
REDACTED = "[redacted]"

# Bot API method URLs carry the token as ``/bot<token>/<method>`` (Bot API,
# "Making requests"); tokens are ``<bot id>:<secret>`` (core.config.model.BotConfig).
_BOT_TOKEN = re.compile(r"(bot[0-9]{1,20}):[A-Za-z0-9_-]{1,100}")
_BOT_TOKEN_REPLACEMENT = r"\1:" + REDACTED

# Left alone: structlog's bookkeeping of stdlib records (ProcessorFormatter's
# LogRecord) and the exception info that format_exc_info renders; its text is
# redacted after rendering.
_SKIPPED_KEYS = frozenset({"_record", "_from_structlog", "exc_info", "stack_info"})


class _SecretIndex:
    """The registered secrets, indexed by their first :data:`MIN_SECRET_LENGTH` characters.

    A text is scanned once, looking each position's prefix up in a dict:
    linear in the text's length whatever the number of secrets (a regular
    expression alternation of 4000 secrets takes about 100 times longer per
    log line). Writers update the index under a lock, one value at a time
    (a tenant start costs its own few values, not a rebuild of every
    tenant's); readers only ``get`` from the dict, which is safe without
    the lock, and each entry is an immutable tuple replaced whole.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_owner: dict[int, set[str]] = {}
        self._owners_of: dict[str, int] = {}  # value -> how many owners registered it
        self.by_prefix: dict[str, tuple[str, ...]] = {}

    def add(self, owner: object, values: Iterable[str]) -> None:
        wanted = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
        with self._lock:
            held = self._by_owner.setdefault(id(owner), set())
            for value in wanted - held:
                held.add(value)
                self._owners_of[value] = self._owners_of.get(value, 0) + 1
                if self._owners_of[value] == 1:
                    prefix = value[:MIN_SECRET_LENGTH]
                    group = self.by_prefix.get(prefix, ())
                    # Longest first, so a secret that extends another is removed whole;
                    # after those of its length. A bisection, not a sort: thousands of
                    # tokens may share a prefix (consecutive bot ids).
                    at = bisect.bisect_right(group, -len(value), key=_longest_first)
                    self.by_prefix[prefix] = (*group[:at], value, *group[at:])

    def forget(self, owner: object) -> None:
        with self._lock:
            for value in self._by_owner.pop(id(owner), set()):
                self._owners_of[value] -= 1
                if self._owners_of[value]:
                    continue
                del self._owners_of[value]
                prefix = value[:MIN_SECRET_LENGTH]
                group = self.by_prefix.get(prefix, ())
                if value in group:
                    at = group.index(value)
                    group = (*group[:at], *group[at + 1 :])
                if group:
                    self.by_prefix[prefix] = group
                else:
                    self.by_prefix.pop(prefix, None)


def _longest_first(value: str) -> int:
    return -len(value)


_SECRETS = _SecretIndex()


def register_secrets(owner: object, values: Iterable[str]) -> None:
    """Add ``values`` to the secrets kept out of logs and shown texts, on behalf of ``owner``.

    Args:
        owner: the object holding them (a :class:`core.runtime.tenant.Tenant`, the
            runtime); :func:`forget_secrets` with the same object removes them.
        values: the secrets; ones shorter than :data:`MIN_SECRET_LENGTH` are ignored.
    """
    _SECRETS.add(owner, values)


def forget_secrets(owner: object) -> None:
    """Stop redacting the secrets ``owner`` registered (unless another owner registered them too)."""
    _SECRETS.forget(owner)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and every Bot API token replaced.

    ``…/bot123:AAE…/sendMessage`` becomes ``…/bot123:[redacted]/sendMessage``;
    a registered secret anywhere becomes ``[redacted]``.
    """
    if "bot" in text:
        text = _BOT_TOKEN.sub(_BOT_TOKEN_REPLACEMENT, text)
    index = _SECRETS.by_prefix
    if not index or len(text) < MIN_SECRET_LENGTH:
        return text
    pieces: list[str] = []
    position = last = 0
    end = len(text) - MIN_SECRET_LENGTH
    lookup = index.get
    while position <= end:
        candidates = lookup(text[position : position + MIN_SECRET_LENGTH])
        if candidates:
            for secret in candidates:
                if text.startswith(secret, position):
                    pieces.append(text[last:position])
                    pieces.append(REDACTED)
                    position = last = position + len(secret)
                    break
            else:
                position += 1
        else:
            position += 1
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def redact_value(value: Any) -> Any:
    """:func:`redact` every string inside ``value`` (dicts, lists, tuples; keys are kept).

    Other objects are rendered with ``repr`` (what the log renderers would
    show) and replaced by the redacted text only when it differed.
    """
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    shown = repr(value)
    cleaned = redact(shown)
    return value if cleaned == shown else cleaned


def redact_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: :func:`redact_value` every value of the event dict.

    Runs in the structlog chain, in the stdlib records' ``foreign_pre_chain``,
    and once more after ``format_exc_info`` so rendered tracebacks are
    cleaned too (:func:`core.runtime.logging.configure_logging`).
    """
    for key, value in event_dict.items():
        if key not in _SKIPPED_KEYS:
            event_dict[key] = redact_value(value)
    return event_dict


def runtime_secrets(
    settings: Any,
    database_url: str | None,
    redis_url: str | None,
    *,
    extra_urls: Iterable[str] = (),
) -> list[str]:
    """The runtime's own secrets: admin token, secret key, database and Redis passwords.

    The queue Redis and listen URL passwords (``settings.queue_redis_url``,
    ``settings.database_listen_url``) are among them.

    Args:
        settings: the :class:`core.runtime.settings.RuntimeSettings`.
        database_url: the DSN in use (configured or embedded).
        redis_url: the Redis URL in use.
        extra_urls: more URLs whose passwords are secret (the other PostgreSQL
            servers, :attr:`core.runtime.settings.RuntimeSettings.databases`).

    Returns:
        The values to pass to :func:`register_secrets`.
    """
    values = [settings.admin_token or "", settings.resolved_secret_key()]
    others = (
        getattr(settings, "queue_redis_url", None),
        getattr(settings, "database_listen_url", None),
    )
    for url in (database_url, redis_url, *others, *extra_urls):
        if url:
            try:
                password = urlsplit(url).password
            except ValueError:  # a malformed port: there is still no password to hide
                password = None
            if password:
                values.append(password)
    return values
