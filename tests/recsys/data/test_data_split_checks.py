"""Issue 13 §4: tiny data says what is too small before the pipeline; duplicate rows are counted."""
from __future__ import annotations

import logging

import pandas as pd
import pytest

from recsys.data.assemble import build_dataset
from recsys.data.contract import (
    LEAVE_LAST_ORDER_OUT,
    LEAVE_ONE_OUT,
    DataValidationError,
    check_trainable,
    split_sizes,
    validate_events,
    validate_items,
)


def dataset(rows, protocol=LEAVE_ONE_OUT):
    events = validate_events(pd.DataFrame(rows, columns=["user_id", "item_id", "event_type",
                                                          "timestamp", "order_id"]), "events.csv")
    items = validate_items(pd.DataFrame({"item_id": sorted({r[1] for r in rows})}), "items.csv")
    return build_dataset("tiny", events, items, protocol=protocol, source_files=(), params={},
                         events_source="events.csv")


def test_split_sizes_follow_the_sequence_builder():
    rows = ([("u1", f"i{i}", "click", i, "") for i in range(5)]      # 5 units: 2 train pairs
            + [("u2", "i1", "purchase", 1, ""), ("u2", "i2", "cart", 2, "")]  # 2: 1 pair, no eval
            + [("u3", "i1", "impression", 1, ""), ("u3", "i2", "click", 2, "")]  # 1 unit: none
            + [("u4", "i3", "click", 1, "")])
    ds = dataset(rows)
    assert split_sizes(ds.events, LEAVE_ONE_OUT) == (3, 1)
    assert (ds.report.n_training_pairs, ds.report.n_users_evaluable) == (3, 1)
    assert "time split: 3 training pairs, 1 users with validation and test targets" in \
        ds.report.summary()


def test_split_sizes_count_orders_for_basket_data():
    rows = [("u1", "i1", "purchase", 1, "o1"), ("u1", "i2", "purchase", 1, "o1"),
            ("u1", "i3", "purchase", 2, "o2"), ("u1", "i4", "purchase", 3, "o3"),
            ("u1", "i5", "purchase", 4, "o4"), ("u1", "i6", "click", 5, "")]  # 5 units
    assert split_sizes(dataset(rows, LEAVE_LAST_ORDER_OUT).events, LEAVE_LAST_ORDER_OUT) == (2, 1)


def test_one_event_per_user_says_what_is_missing():
    ds = dataset([(f"u{i}", f"i{i % 7}", "purchase", i, "") for i in range(300)])
    with pytest.raises(DataValidationError) as info:
        check_trainable(ds)
    message = str(info.value)
    assert "no user has 3 or more interactions" in message
    assert "Add events" in message


def test_fewer_training_pairs_than_a_batch_says_so_and_what_to_do():
    # 35 users x 7 interactions: 35 x 4 = 140 training pairs (the failing case).
    ds = dataset([(f"u{u}", f"i{(u + t) % 20}", "click", t, "") for u in range(35)
                  for t in range(7)])
    with pytest.raises(DataValidationError) as info:
        check_trainable(ds)
    message = str(info.value)
    assert "140 training pairs" in message and "batch of 1,024" in message
    assert "batch size of at most 140" in message
    check_trainable(ds, batch_size=128)  # enough for a smaller batch


def test_tiny_data_is_warned_about_at_load(caplog):
    with caplog.at_level(logging.WARNING, logger="recsys.data"):
        dataset([("u1", "i1", "click", 1, ""), ("u1", "i2", "click", 2, "")])
    assert "the time split gives 1 training pairs" in caplog.text


def test_duplicate_rows_are_dropped_counted_and_reported(caplog):
    rows = [("u1", "i1", "click", 1, ""), ("u1", "i2", "click", 2, ""),
            ("u1", "i1", "click", 1, ""),   # duplicate of row 1
            ("u1", "i1", "click", 3, ""),   # same item later: a second click, kept
            ("u2", "i2", "purchase", 5, "o1"), ("u2", "i2", "purchase", 5, "o1"),  # duplicate
            ("u2", "i2", "purchase", 5, "o2")]  # another order: kept
    with caplog.at_level(logging.WARNING, logger="recsys.data"):
        ds = dataset(rows)
    assert len(ds.events) == 5 and ds.report.n_events == 5
    assert ds.report.n_duplicate_events == 2
    assert ds.report.duplicate_examples[0] == "row 3: user u1, item i1, click at 1"
    assert ds.report.duplicate_examples[1] == "row 6: user u2, item i2, purchase at 5"
    assert "dropped 2 duplicate event rows" in ds.report.summary()
    assert "dropping 2 duplicate event rows" in caplog.text
    assert "duplicate event rows: 0" in dataset(rows[:2]).report.summary()
