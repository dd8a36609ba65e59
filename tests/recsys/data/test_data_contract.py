"""Validation, timestamp parsing, the unknown-item policy and the load report."""
from __future__ import annotations

import logging
import pickle

import numpy as np
import pandas as pd
import pytest

from recsys.data import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    DataValidationError,
    LoadReport,
    parse_timestamps,
    validate_events,
    validate_items,
    validate_users,
)
from recsys.data.assemble import build_dataset, canonical_sort


def _events(**overrides) -> pd.DataFrame:
    base = {
        "user_id": ["u1", "u1", "u2"],
        "item_id": ["a", "b", "a"],
        "event_type": ["click", "purchase", "cart"],
        "timestamp": ["100", "200", "150"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def _items(ids=("a", "b")) -> pd.DataFrame:
    return validate_items(pd.DataFrame({"item_id": list(ids)}), "items.csv")


def _raises(fn, *, row, field, contains=()) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        fn()
    err = info.value
    assert err.file == "events.csv" or err.file == "items.csv" or err.file == "users.csv"
    assert err.row == row
    assert err.field == field
    msg = str(err)
    assert msg.startswith(err.file)
    if row is not None:
        assert f"row {row}" in msg
    if field is not None:
        assert f"field '{field}'" in msg
    for text in contains:
        assert text in msg, msg
    return err


# --- validation errors ---------------------------------------------------------------------------


def test_valid_events_are_canonical_and_typed():
    out = validate_events(_events(event_type=[" Click", "PURCHASE", "cart"]), "events.csv")
    assert tuple(out.columns) == EVENT_COLUMNS
    assert out["event_type"].tolist() == ["click", "purchase", "cart"]
    assert out["timestamp"].dtype == np.int64 and out["timestamp"].tolist() == [100, 200, 150]
    assert out["order_id"].tolist() == ["", "", ""] and out["session_id"].tolist() == ["", "", ""]
    assert out["dwell_ms"].dtype == np.float64 and out["dwell_ms"].isna().all()
    assert out["user_id"].map(type).eq(str).all()


def test_missing_required_column_names_file_column_and_found_columns():
    _raises(lambda: validate_events(_events().drop(columns="timestamp"), "events.csv"),
            row=None, field="timestamp",
            contains=("events.csv", "'timestamp' is missing", "['user_id', 'item_id', 'event_type']"))


def test_unknown_event_type_names_row_value_and_allowed_set():
    _raises(lambda: validate_events(_events(event_type=["click", "click", "view"]), "events.csv"),
            row=3, field="event_type",
            contains=("'view'", "impression, click, like, cart, purchase"))


def test_unparseable_timestamp_message_matches_contract():
    err = _raises(lambda: validate_events(_events(timestamp=["1", "2", "2021-13-45"]), "events.csv"),
                  row=3, field="timestamp")
    assert str(err) == ("events.csv row 3, field 'timestamp': cannot parse '2021-13-45' as a timestamp "
                        "(expected epoch seconds or ISO-8601)")


def test_missing_timestamp_and_millisecond_timestamps_are_explained():
    _raises(lambda: validate_events(_events(timestamp=["1", "", "3"]), "events.csv"),
            row=2, field="timestamp", contains=("missing timestamp",))
    _raises(lambda: validate_events(_events(timestamp=["1700000000000", "2", "3"]), "events.csv"),
            row=1, field="timestamp", contains=("milliseconds", "divide by 1000"))


def test_empty_ids_are_rejected_with_their_row():
    _raises(lambda: validate_events(_events(user_id=["u1", " ", "u2"]), "events.csv"),
            row=2, field="user_id", contains=("empty user_id",))
    _raises(lambda: validate_events(_events(item_id=["a", "b", None]), "events.csv"),
            row=3, field="item_id", contains=("empty item_id",))


def test_more_bad_rows_are_counted():
    err = _raises(lambda: validate_events(_events(event_type=["x", "click", "y"]), "events.csv"),
                  row=1, field="event_type")
    assert "1 more row" in str(err) and "row 3" in str(err)


def test_non_numeric_dwell_is_rejected():
    _raises(lambda: validate_events(_events(dwell_ms=["10", "ten", ""]), "events.csv"),
            row=2, field="dwell_ms", contains=("'ten'",))


def test_no_rows_is_an_error():
    _raises(lambda: validate_events(_events().iloc[:0], "events.csv"), row=None, field=None,
            contains=("no data rows",))


def test_items_duplicates_name_both_rows():
    _raises(lambda: validate_items(pd.DataFrame({"item_id": ["a", "b", "c", "b"]}), "items.csv"),
            row=4, field="item_id", contains=("'b'", "rows 2 and 4"))


def test_items_non_numeric_price():
    raw = pd.DataFrame({"item_id": ["a", "b"], "price": ["1.5", "$2"]})
    _raises(lambda: validate_items(raw, "items.csv"), row=2, field="price", contains=("'$2'", "currency"))


def test_items_canonical_defaults_and_category_normalisation():
    raw = pd.DataFrame({"item_id": [1, 2, 3], "price": ["1.5", "", " 2 "],
                        "category": ["a>b", " x > y >", ""], "created_at": ["2021-01-01", "", "5"]})
    out = validate_items(raw, "items.csv")
    assert tuple(out.columns) == ITEM_COLUMNS
    assert out["item_id"].tolist() == ["1", "2", "3"]
    assert out["category"].tolist() == ["a > b", "x > y", ""]
    assert out["title"].tolist() == ["", "", ""] and out["brand"].tolist() == ["", "", ""]
    np.testing.assert_array_equal(out["price"].to_numpy(), [1.5, np.nan, 2.0])
    assert out["created_at"].tolist() == [1609459200, -1, 5]


def test_items_missing_item_id_column():
    _raises(lambda: validate_items(pd.DataFrame({"title": ["x"]}), "items.csv"), row=None, field="item_id",
            contains=("['title']",))


def test_users_duplicates():
    _raises(lambda: validate_users(pd.DataFrame({"user_id": ["1", "1"]}), "users.csv"), row=2, field="user_id")


def test_error_survives_pickling():
    err = DataValidationError("events.csv", 3, "timestamp", "bad")
    again = pickle.loads(pickle.dumps(err))
    assert (again.file, again.row, again.field, str(again)) == ("events.csv", 3, "timestamp", str(err))


# --- timestamps ------------------------------------------------------------------------------------


def test_parse_timestamps_accepts_ints_floats_and_iso():
    assert parse_timestamps(pd.Series([1, 2, 3])).tolist() == [1, 2, 3]
    assert parse_timestamps(pd.Series([1.9, -0.5])).tolist() == [1, -1]  # floored
    got = parse_timestamps(pd.Series(["2021-01-01", "2021-01-01T00:00:01Z", "2021-01-01 02:00:00+02:00",
                                      "2021-01-01T00:00:02", " 5 ", "1.5e3", "881250949.0"]))
    assert got.tolist() == [1609459200, 1609459201, 1609459200, 1609459202, 5, 1500, 881250949]
    assert got.dtype == np.int64


def test_parse_timestamps_datetime_column_and_missing_value():
    dt = pd.Series(pd.to_datetime(["1970-01-02", None]))
    assert parse_timestamps(dt, missing=-1).tolist() == [86400, -1]


@pytest.mark.parametrize("bad", ["2021-02-30", "yesterday", "12/01/2021", "inf"])
def test_parse_timestamps_rejects_non_iso_text(bad):
    with pytest.raises(DataValidationError, match="row 2, field 'ts'"):
        parse_timestamps(pd.Series(["1", bad]), "f.csv", "ts")


# --- unknown items / users policy and the report -----------------------------------------------


def _dataset(events, items, **kw):
    return build_dataset("t", events, items, protocol="leave_one_out", source_files=(), params={},
                         events_source="events.csv", items_source="items.csv", **kw)


def test_unknown_items_are_dropped_counted_listed_and_logged(caplog):
    events = validate_events(_events(item_id=["a", "zz", "yy"]), "events.csv")
    with caplog.at_level(logging.WARNING, logger="recsys.data"):
        ds = _dataset(events, _items())
    assert ds.events["item_id"].tolist() == ["a"]
    assert ds.report.n_events == 1
    assert ds.report.n_events_unknown_item == 2
    assert ds.report.unknown_item_examples == ("zz", "yy")
    assert ds.report.n_events_unknown_user is None
    assert any(r.name == "recsys.data" and "2 events" in r.getMessage() for r in caplog.records)
    assert "dropped 2 events whose item is not in the items table (e.g. zz, yy)" in ds.report.summary()


def test_unknown_items_examples_are_capped_at_five():
    ids = [f"x{i}" for i in range(8)] + ["a"]
    raw = pd.DataFrame({"user_id": "u", "item_id": ids, "event_type": "click", "timestamp": range(9)})
    ds = _dataset(validate_events(raw, "events.csv"), _items())
    assert ds.report.n_events_unknown_item == 8
    assert ds.report.unknown_item_examples == ("x0", "x1", "x2", "x3", "x4")


def test_unknown_items_strict_raises_with_row():
    events = validate_events(_events(item_id=["a", "b", "zz"]), "events.csv")
    err = _raises(lambda: _dataset(events, _items(), strict=True), row=3, field="item_id",
                  contains=("'zz'", "strict=False"))
    assert err.file == "events.csv"


def test_unknown_users_only_with_users_table():
    events = validate_events(_events(), "events.csv")
    users = validate_users(pd.DataFrame({"user_id": ["u1"]}), "users.csv")
    ds = _dataset(events, _items(), users=users, users_source="users.csv")
    assert ds.report.n_events_unknown_user == 1
    assert ds.report.unknown_user_examples == ("u2",)
    assert set(ds.events["user_id"]) == {"u1"}
    with pytest.raises(DataValidationError, match="events.csv row 3, field 'user_id'"):
        _dataset(events, _items(), users=users, users_source="users.csv", strict=True)


def test_everything_unknown_is_an_error():
    events = validate_events(_events(item_id=["q", "r", "s"]), "events.csv")
    with pytest.raises(DataValidationError, match="no events left"):
        _dataset(events, _items())


def test_canonical_sort_is_user_then_time_with_ties_in_file_order():
    raw = pd.DataFrame({"user_id": ["b", "a", "a", "a", "a"], "item_id": ["x", "z", "y", "y", "w"],
                        "event_type": ["click", "click", "click", "cart", "click"],
                        "timestamp": [1, 5, 5, 5, 9]})
    out = canonical_sort(validate_events(raw, "e"))
    # the three events of "a" at t=5 keep their file order (z before y), not item-id order
    assert list(zip(out["user_id"], out["item_id"], out["event_type"])) == [
        ("a", "z", "click"), ("a", "y", "click"), ("a", "y", "cart"), ("a", "w", "click"), ("b", "x", "click")]
    assert out.index.tolist() == [0, 1, 2, 3, 4]


def test_canonical_sort_uses_the_time_key_and_keeps_file_order_on_equal_keys():
    raw = pd.DataFrame({"user_id": ["a"] * 4, "item_id": ["p", "q", "r", "s"], "event_type": ["click"] * 4,
                        "timestamp": [40, 31, 30, 10]})
    coarse = canonical_sort(validate_events(raw, "e"), time_key=lambda ts: ts // 10)  # 31 and 30 tie
    assert coarse["item_id"].tolist() == ["s", "q", "r", "p"]
    with pytest.raises(ValueError, match="shape"):
        canonical_sort(validate_events(raw, "e"), time_key=lambda ts: ts[:2])


def test_report_counts_and_unused_fields():
    raw = _events(order_id=["o1", "o1", ""])
    ds = _dataset(validate_events(raw, "events.csv"), _items(("a", "b", "c")))
    r = ds.report
    assert (r.n_events, r.n_users, r.n_items, r.n_items_with_events, r.n_orders) == (3, 2, 3, 2, 1)
    assert r.event_type_counts == (("click", 1), ("cart", 1), ("purchase", 1))
    assert "events.session_id" in r.unused_optional_fields and "events.order_id" not in r.unused_optional_fields
    assert "items.title" in r.unused_optional_fields
    text = r.summary()
    assert text.count("\n") >= 5 and "events: 3" in text


def test_report_is_frozen():
    r = LoadReport(n_events=1, n_users=1, n_items=1)
    with pytest.raises(AttributeError):
        r.n_events = 2  # type: ignore[misc]
