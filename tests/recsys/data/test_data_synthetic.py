"""Synthetic generator: deterministic, labelled, shaped like a shop, generated in independent shards of users."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from recsys.data import dataset_fingerprint, event_shards, load_dataset, synthetic
from recsys.data.contract import LEAVE_LAST_ORDER_OUT, DataValidationError, check_trainable, split_sizes
from recsys.data.streaming import check_trainable_by_shard, first_users, shard_frames, split_sizes_by_shard
from recsys.data.synthetic import SYNTHETIC_NOTE, generate


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of about 400 events, so that small data spans several of them."""
    monkeypatch.setattr(synthetic, "SHARD_EVENTS", 400)


def test_deterministic_for_a_seed():
    a = generate(n_users=50, n_items=200, n_events=3_000, seed=7)
    b = load_dataset("synthetic", n_users=50, n_items=200, n_events=3_000, seed=7)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() == dataset_fingerprint("synthetic", n_users=50, n_items=200, n_events=3_000, seed=7)
    assert dict(a.params)["version"] == 2
    c = generate(n_users=50, n_items=200, n_events=3_000, seed=8)
    assert not a.events.equals(c.events)
    assert a.fingerprint() != c.fingerprint()


PINNED_DIGEST = "d0cf4a73811bd5d0"  # generator v2, numpy 1.26


def test_the_data_of_a_seed_is_pinned():
    """The events of one small configuration, digested: a change of the generator's output fails here and
    needs ``synthetic.VERSION`` bumped (it is part of every synthetic fingerprint) and this digest renewed."""
    ds = generate(n_users=30, n_items=80, n_events=1_000, seed=3)
    digest = hashlib.sha256(ds.events.to_csv(index=False).encode() + ds.items.to_csv(index=False).encode())
    assert digest.hexdigest()[:16] == PINNED_DIGEST


def test_shape_and_labels():
    ds = generate(n_users=100, n_items=500, n_events=5_000, seed=0)
    r = ds.report
    assert ds.synthetic and ds.name == "synthetic"
    assert SYNTHETIC_NOTE in r.notes and "SYNTHETIC: for scale tests only, never for quality claims" in r.summary()
    assert (r.n_events, r.n_users, r.n_items) == (5_000, 100, 500)
    assert ds.items["category"].str.count(" > ").eq(1).all()  # two levels
    assert ds.items["title"].ne("").all()
    baskets = ds.events[ds.events["order_id"] != ""]
    assert baskets["event_type"].eq("purchase").all()
    assert baskets.groupby("order_id").size().max() > 1  # orders of several items
    assert baskets.groupby("order_id")["session_id"].nunique().eq(1).all()  # a basket is one session
    assert set(ds.events["event_type"]) == {"impression", "click", "like", "cart", "purchase"}
    # Zipf: the most popular 10% of items take far more than 10% of the events
    counts = ds.events["item_id"].value_counts()
    assert counts.iloc[: len(ds.items) // 10].sum() > 0.3 * len(ds.events)
    # sessions of 1 + Poisson(3) events: mean 4, variance 3 (1,250 sessions: within 0.2 and 0.5)
    sizes = ds.events.groupby("session_id").size()
    assert abs(sizes.mean() - 4) < 0.2 and abs(sizes.var() - 3) < 0.5 and sizes.min() >= 1
    # 60% of a user's events from one department (the favourite) plus its Zipf share of the rest
    dept = ds.events["item_id"].map(dict(zip(ds.items["item_id"], ds.items["category"].str.split(" > ").str[0])))
    top_share = dept.groupby(ds.events["user_id"]).agg(lambda d: d.value_counts().iloc[0] / len(d))
    assert top_share.median() > 0.6


@pytest.mark.parametrize("n_users,n_events", [(50, 3_000), (40, 7), (1, 1), (7, 2_999)])
def test_exactly_n_events_and_every_user_a_session(small_shards, n_users, n_events):
    ds = generate(n_users=n_users, n_items=30, n_events=n_events, seed=1)
    source = event_shards("synthetic", n_users=n_users, n_items=30, n_events=n_events, seed=1)
    assert len(ds.events) == ds.report.n_events == n_events
    n_sessions = source.events.n_sessions
    assert ds.events["session_id"].nunique() == n_sessions
    # every user gets a session while there are sessions for all; else as many users as sessions
    assert ds.events["user_id"].nunique() == min(n_users, n_sessions)
    assert sum(int(s.events.sum()) for s in source.shards) == n_events


def test_shards_concatenate_to_generate(small_shards):
    args = dict(n_users=60, n_items=120, n_events=3_000, seed=5)
    source = event_shards("synthetic", **args)
    assert len(source.shards) >= 5
    frames = [source.events(s) for s in source.shards]
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), generate(**args).events)
    pd.testing.assert_frame_equal(source.items, generate(**args).items)
    # ids stay unique across shards: users, sessions and orders of two shards never meet
    for column in ("user_id", "session_id", "order_id"):
        seen = [set(f[column]) - {""} for f in frames]
        assert sum(len(s) for s in seen) == len(set().union(*seen)), column
    # a shard holds about SHARD_EVENTS events: its first user starts in its block of 400
    assert max(len(f) for f in frames) < 400 + max(f.groupby("user_id").size().max() for f in frames)


def test_a_shard_alone_equals_its_part_of_the_whole(small_shards):
    args = dict(n_users=60, n_items=120, n_events=3_000, seed=5)
    alone = event_shards("synthetic", **args)  # a fresh generator: only shard 3 is made
    k = 3
    frame = alone.events(alone.shards[k])
    whole = generate(**args).events
    first, last = frame["user_id"].iat[0], frame["user_id"].iat[-1]
    part = whole[(whole["user_id"] >= first) & (whole["user_id"] <= last)].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, part)
    # its own random stream: another seed changes it, and the same shard made again is the same
    other = event_shards("synthetic", **{**args, "seed": 6})
    pd.testing.assert_frame_equal(alone.events(alone.shards[k]), frame)
    assert not other.events(other.shards[k]).equals(frame)


def test_the_shard_function_pickles_small():
    import pickle

    source = event_shards("synthetic", n_users=50, n_items=20_000, n_events=3_000, seed=0)
    source.events(source.shards[0])  # computes the item popularity, 20,000 items
    assert len(pickle.dumps(source.events)) < 500  # it is not pickled with it


@pytest.mark.parametrize("args,max_users,verdict_start", [
    (dict(n_users=300, n_items=200, n_events=6_000), 0, ""),
    (dict(n_users=300, n_items=200, n_events=6_000), 40, "too little data to train"),  # the slice, over shards
    (dict(n_users=30, n_items=50, n_events=200), 0, "too little data to train"),
    (dict(n_users=5, n_items=50, n_events=2), 0, "too little data to split"),  # no user with 3 interactions
    (dict(n_users=300, n_items=200, n_events=20_000, protocol=LEAVE_LAST_ORDER_OUT), 0, ""),
    (dict(n_users=300, n_items=200, n_events=6_000, protocol=LEAVE_LAST_ORDER_OUT), 80, "too little data to train"),
])
def test_the_check_by_shard_gives_check_trainables_verdict(small_shards, args, max_users, verdict_start):
    ds = load_dataset("synthetic", seed=2, **args)
    source = event_shards("synthetic", seed=2, **args)
    events = ds.events
    if max_users:
        events = events[events["user_id"].isin(set(sorted(events["user_id"].unique())[:max_users]))]
        assert first_users(source, max_users) == set(events["user_id"])
    assert split_sizes_by_shard(source, max_users) == split_sizes(events, ds.protocol)

    def verdict(check):
        try:
            check()
        except DataValidationError as e:
            return str(e)
        return ""

    import dataclasses

    want = verdict(lambda: check_trainable(dataclasses.replace(ds, events=events), 1024))
    assert verdict(lambda: check_trainable_by_shard(source, 1024, max_users)) == want
    assert want == "" if not verdict_start else want.startswith(f"synthetic: {verdict_start}")


def test_shards_out_of_user_order_are_refused(small_shards):
    import dataclasses

    source = event_shards("synthetic", n_users=60, n_items=120, n_events=3_000, seed=5)
    backwards = dataclasses.replace(source, shards=source.shards[::-1])
    with pytest.raises(ValueError, match="not after the previous shard's last user"):
        list(shard_frames(backwards))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_events must be a positive integer"):
        generate(n_events=0)
    with pytest.raises(ValueError, match="reads no files"):
        load_dataset("synthetic", "/tmp")
    with pytest.raises(ValueError, match="protocol must be one of"):
        event_shards("synthetic", protocol="random")
