"""Turning REDIS_URI into a client: redis://, rediss:// (TLS), passwords, database index, and
Redis Sentinel as redis+sentinel://[:password@]host1:26379,host2:26379/service_name[/db]."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.driver_info import DriverInfo
from redis.utils import get_lib_version

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 15,
    "retry_on_timeout": False,
    # Resolved once: left to itself, redis-py looks its own version up in the installed
    # packages' metadata for every new connection, a millisecond each while a burst grows
    # the pool.
    "driver_info": DriverInfo(lib_version=get_lib_version()),
}

# Per process. A connection is held for one command or pipeline (the pub/sub connection and the
# wake listener's blocking one are held for good).
POOL_CONNECTIONS = 100
POOL_WAIT_SECS = 10


class RedisUriError(ValueError):
    pass


def connect(uri: str) -> aioredis.Redis:
    parts = urlsplit(uri)
    if parts.scheme not in SENTINEL_SCHEMES:
        # Under a burst (a thousand streams opening at once) callers queue for a connection
        # instead of failing with "Too many connections", which would drop events.
        pool = aioredis.BlockingConnectionPool.from_url(
            uri, max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_SECS, **CLIENT_OPTIONS
        )
        return aioredis.Redis.from_pool(pool)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) if userinfo else None
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        if not host:
            raise RedisUriError(f"REDIS_URI: bad sentinel address {item!r}")
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUriError("REDIS_URI: a sentinel URI names the service: .../service_name[/db]")
    service = path[0]
    db = int(path[1]) if len(path) > 1 else 0
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls: dict[str, Any] = {}
    if parts.scheme == "rediss+sentinel":
        tls = {"ssl": True, "ssl_cert_reqs": query.get("ssl_cert_reqs", "required")}
        if "ssl_ca_certs" in query:
            tls["ssl_ca_certs"] = query["ssl_ca_certs"]
    sentinel = Sentinel(
        hosts,
        sentinel_kwargs={
            "password": query.get("sentinel_password"),
            **tls,
            "socket_connect_timeout": 2,
        },
        **CLIENT_OPTIONS,
        **tls,
    )
    return sentinel.master_for(service, db=db, password=password)
