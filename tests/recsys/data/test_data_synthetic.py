"""Synthetic generator: deterministic, labelled, shaped like a shop."""
from __future__ import annotations

import pandas as pd
import pytest

from recsys.data import dataset_fingerprint, load_dataset
from recsys.data.synthetic import SYNTHETIC_NOTE, generate


def test_deterministic_for_a_seed():
    a = generate(n_users=50, n_items=200, n_events=3_000, seed=7)
    b = load_dataset("synthetic", n_users=50, n_items=200, n_events=3_000, seed=7)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() == dataset_fingerprint("synthetic", n_users=50, n_items=200, n_events=3_000, seed=7)
    c = generate(n_users=50, n_items=200, n_events=3_000, seed=8)
    assert not a.events.equals(c.events)
    assert a.fingerprint() != c.fingerprint()


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
    assert set(ds.events["event_type"]) == {"impression", "click", "like", "cart", "purchase"}
    # Zipf: the most popular 10% of items take far more than 10% of the events
    counts = ds.events["item_id"].value_counts()
    assert counts.iloc[: len(ds.items) // 10].sum() > 0.3 * len(ds.events)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_events must be a positive integer"):
        generate(n_events=0)
    with pytest.raises(ValueError, match="reads no files"):
        load_dataset("synthetic", "/tmp")
