"""Instacart adapter: timestamp derivation and categories on tiny frames, and the real sample."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from recsys.data import DataValidationError, dataset_fingerprint, load_dataset
from recsys.data import instacart
from recsys.data.instacart import ANCHOR

DAY, HOUR = 86_400, 3_600


def _orders(rows):
    cols = ["user_id", "order_id", "order_number", "order_hour_of_day", "days_since_prior_order",
            "product_id", "add_to_cart_order"]
    return pd.DataFrame(rows, columns=cols)


def test_timestamps_follow_cumulative_days_hours_and_basket_position():
    orders = _orders([
        # user, order, number, hour, days_since_prior, product, cart
        ("1", "o2", 2, 9, 3.0, "p1", 2.0),
        ("1", "o1", 1, 8, np.nan, "p1", 1.0),
        ("1", "o1", 1, 8, np.nan, "p2", 2.0),
        ("1", "o2", 2, 9, 3.0, "p3", 1.0),
        ("1", "o3", 3, 7, 4.0, "p2", 1.0),
        ("2", "o9", 1, 0, 30.0, "p1", 1.0),  # first order: day 0 whatever the gap says
    ])
    ts, shifted = instacart.derive_timestamps(orders)
    assert shifted == 0
    assert ts.tolist() == [
        ANCHOR + 3 * DAY + 9 * HOUR + 2,
        ANCHOR + 8 * HOUR + 1,
        ANCHOR + 8 * HOUR + 2,
        ANCHOR + 3 * DAY + 9 * HOUR + 1,
        ANCHOR + 7 * DAY + 7 * HOUR + 1,
        ANCHOR + 1,
    ]
    assert ts.dtype == np.int64


def test_same_day_same_hour_orders_do_not_overlap():
    orders = _orders([
        ("1", "a", 1, 10, np.nan, "p1", 1.0),
        ("1", "a", 1, 10, np.nan, "p2", 2.0),
        ("1", "a", 1, 10, np.nan, "p3", 3.0),
        ("1", "b", 2, 10, 0.0, "p4", 1.0),   # same day, same hour: would interleave with order a
        ("1", "b", 2, 10, 0.0, "p5", 2.0),
        ("1", "c", 3, 9, 0.0, "p6", 1.0),    # same day, an earlier hour: must still come after b
    ])
    ts, shifted = instacart.derive_timestamps(orders)
    base = ANCHOR + 10 * HOUR
    assert ts.tolist() == [base + 1, base + 2, base + 3, base + 4, base + 5, base + 6]
    assert shifted == 2


def test_bad_order_rows_name_the_row():
    orders = _orders([("1", "a", 1, "noon", np.nan, "p1", 1.0)])
    with pytest.raises(DataValidationError, match=r"df_sample.csv row 1, field 'order_hour_of_day'"):
        instacart.derive_timestamps(orders)
    shared = _orders([("1", "a", 1, 1, np.nan, "p1", 1.0), ("2", "a", 1, 1, np.nan, "p2", 2.0)])
    with pytest.raises(DataValidationError, match="belongs to more than one user"):
        instacart.derive_timestamps(shared)


def test_categories_from_sample_rows():
    departments = ["frozen", "other", "missing"]
    # order_id, product_id, cart, reordered, aisle_id, department_id, number, dow, hour, days
    sample = np.array([
        [1, 10, 1, 0, 84, 1, 1, 0, 8, np.nan],
        [2, 10, 1, 0, 84, 1, 1, 0, 8, np.nan],
        [3, 11, 2, 0, 6, 2, 1, 0, 8, np.nan],
        [4, 12, 1, 0, 100, 3, 1, 0, 8, np.nan],
    ], dtype=float)
    cats = instacart.product_categories(sample, departments)
    assert cats == {"10": "frozen > aisle 84", "11": "other > aisle 6", "12": ""}
    items = instacart.items_from_products(["11", "10", "13", "11"], cats)
    assert items["item_id"].tolist() == ["10", "11", "13"]
    assert items["category"].tolist() == ["frozen > aisle 84", "other > aisle 6", ""]
    assert items["title"].eq("").all() and items["description"].eq("").all()


def test_read_departments_parses_without_import(tmp_path):
    info = tmp_path / "INFO.py"
    info.write_text("import pkg_resources\nX = 1\nDEPARTMENT_CATEGORY = ['frozen', 'other']\n", encoding="utf-8")
    assert instacart.read_departments(str(info)) == ["frozen", "other"]


@pytest.mark.integration
def test_real_instacart_sample():
    start = time.perf_counter()
    ds = load_dataset("instacart")
    elapsed = time.perf_counter() - start
    r = ds.report
    assert (r.n_events, r.n_users, r.n_items, r.n_orders) == (150_000, 593, 14_190, 15_183)
    assert ds.protocol == "leave_last_order_out"
    assert dict(r.event_type_counts) == {"purchase": 150_000}
    assert ds.events["order_id"].ne("").all()
    assert r.n_items_with_category == 4_312
    assert ds.items["title"].eq("").all() and ds.items["description"].eq("").all()
    assert any("no product text" in n for n in r.notes)
    assert any("4,332 have an aisle/department" in n for n in r.notes)
    assert ds.items.set_index("item_id").loc["10", "category"] == "beverages > aisle 115"
    # every order is one contiguous run in each user's time order
    ev = ds.events
    pos = ev.groupby("user_id").cumcount()
    span = pos.groupby(ev["order_id"]).agg(["min", "max", "size"])
    assert (span["max"] - span["min"] + 1 == span["size"]).all()
    assert ds.fingerprint() == dataset_fingerprint("instacart")
    print(f"loaded in {elapsed:.1f}s")
