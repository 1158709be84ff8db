"""Redis Cluster support: the ``redis+cluster://`` URL and the hash tags that keep multi-key work in one slot.

Redis Cluster runs a command or a Lua script touching several keys only when
all of them hash to one slot (otherwise ``CROSSSLOT``). The slot of a key is
CRC16 of its hash tag, the part between the first ``{`` and the next ``}``
(Redis Cluster specification, "Hash tags"), or of the whole key without one.
So, on a cluster only:

* a tenant's prefix is wrapped in braces (:func:`tagged_prefix`, ``filin:``
  becomes ``{filin}:``), which puts all of a tenant's keys (update claims, FSM
  state, limiter, rate limits, idempotency, locks) in one slot;
* each event shard stream is its own hash tag, and its done markers, locks
  and attempt counters carry the same tag (:class:`core.events.streams.StreamLayout`).

On a plain Redis, keys keep their names, so deployments that switch nothing
keep their FSM state and pending events. saq jobs and Litestar Channels
(realtime) do not run on a cluster (their scripts and keys have no hash
tags): they use the plain Redis of ``TENANTRY_QUEUE_REDIS_URL``
(:func:`queue_redis_url`). docs/ops.md, "Redis Cluster".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

if TYPE_CHECKING:
    from core.runtime.settings import RuntimeSettings

__all__ = [
    "CLUSTER_SCHEMES",
    "connect_cluster",
    "is_cluster",
    "is_cluster_url",
    "queue_redis_url",
    "slot_of",
    "tagged_prefix",
]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""URL schemes of a Redis Cluster: ``redis+cluster://[user:password@]host:port[,host:port...]``."""


def is_cluster_url(url: str | None) -> bool:
    """True when ``url`` names a Redis Cluster (:data:`CLUSTER_SCHEMES`)."""
    return url is not None and url.startswith(CLUSTER_SCHEMES)


def is_cluster(redis: Any) -> bool:
    """True when ``redis`` is a cluster client (keys must then carry hash tags)."""
    return isinstance(redis, RedisCluster)


def tagged_prefix(prefix: str) -> str:
    """The tenant prefix as a hash tag: ``filin:`` -> ``{filin}:``, ``t7`` -> ``{t7}``.

    A prefix that already holds a non-empty hash tag (``{filin}:``) is used as
    it is. The loader rejects overlapping prefixes, so two tenants never get
    one tag from two prefixes (``a`` and ``a:`` overlap).
    """
    start = prefix.find("{")
    if start >= 0 and prefix.find("}", start + 1) > start + 1:
        return prefix
    if prefix.endswith(":"):
        return "{" + prefix[:-1] + "}:"
    return "{" + prefix + "}"


def slot_of(key: str) -> int:
    """The cluster slot of ``key`` (0-16383), honouring its hash tag, as ``CLUSTER KEYSLOT``."""
    return key_slot(key.encode())


def connect_cluster(url: str, **options: Any) -> RedisCluster:
    """A cluster client for ``redis+cluster://[user:password@]host:port[,host:port...]``.

    The nodes listed are only where discovery starts (``CLUSTER SHARDS``); the
    client follows the cluster's slot map and its ``MOVED`` redirections.

    Args:
        url: a :data:`CLUSTER_SCHEMES` URL; ``rediss+`` connects with TLS.
        **options: connection options (``decode_responses``, timeouts...).

    Raises:
        ValueError: the URL names no ``host:port``.
    """
    scheme, _, rest = url.partition("://")
    location = rest.split("/", 1)[0].split("?", 1)[0]
    credentials, _, hosts = location.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"Redis Cluster URL: {item!r} is not host:port")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if credentials:
        username, _, password = credentials.partition(":")
        options.setdefault("username", unquote(username) or None)
        options.setdefault("password", unquote(password) or None)
    if scheme.startswith("rediss"):
        options.setdefault("ssl", True)
    return RedisCluster(startup_nodes=nodes, **options)


def queue_redis_url(settings: RuntimeSettings, redis_url: str) -> str:
    """The plain Redis of saq jobs and realtime Channels.

    ``TENANTRY_QUEUE_REDIS_URL`` when set, else the main Redis, which must
    then not be a cluster.

    Args:
        settings: the runtime settings.
        redis_url: the main Redis URL in use (``TENANTRY_REDIS_URL`` or the embedded one).

    Raises:
        ValueError: the main Redis is a cluster and no queue Redis is set, or
            the queue Redis is itself a cluster.
    """
    queue_url = settings.queue_redis_url
    if is_cluster_url(queue_url):
        raise ValueError(
            "TENANTRY_QUEUE_REDIS_URL must be a plain Redis (redis:// or unix://): saq jobs "
            "and realtime Channels use multi-key scripts without hash tags"
        )
    if queue_url:
        return queue_url
    if is_cluster_url(redis_url):
        raise ValueError(
            "TENANTRY_REDIS_URL is a Redis Cluster: set TENANTRY_QUEUE_REDIS_URL to a plain "
            "Redis for saq jobs and realtime Channels (docs/ops.md, 'Redis Cluster')"
        )
    return redis_url
