"""The 'files' adapter: a directory of CSV/Parquet files."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from recsys.data import DataValidationError, DatasetNotFoundError, dataset_fingerprint, load_dataset

EVENTS = """user_id,item_id,event_type,timestamp,order_id
u1,007,click,2021-01-01T00:00:00Z,
u1,008,purchase,1609459300,o1
u2,007,cart,1609459200,
u2,999,purchase,1609459400,o2
"""
ITEMS = """item_id,title,category,price,colour
007,Bond mug,Kitchen>Mugs,9.5,blue
008,Spy pen,,,red
"""


def _write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return directory


def test_loads_csv_directory_with_unknown_item_accounting(tmp_path, caplog):
    d = _write(tmp_path / "shop", events_csv=EVENTS, items_csv=ITEMS)
    with caplog.at_level(logging.WARNING, logger="recsys.data"):
        ds = load_dataset("files", str(d))
    assert ds.name == "files" and ds.protocol == "leave_one_out" and not ds.synthetic
    assert ds.events["item_id"].tolist() == ["007", "008", "007"]  # leading zeros kept, 999 dropped
    assert ds.events["timestamp"].tolist() == [1609459200, 1609459300, 1609459200]
    assert ds.items["category"].tolist() == ["Kitchen > Mugs", ""]
    r = ds.report
    assert (r.n_events, r.n_users, r.n_items, r.n_orders) == (3, 2, 2, 1)
    assert r.n_events_unknown_item == 1 and r.unknown_item_examples == ("999",)
    assert any("999" in rec.getMessage() for rec in caplog.records if rec.name == "recsys.data")
    notes = " ".join(r.notes)
    assert "events.csv has no column session_id, dwell_ms" in notes
    assert "ignored columns not in the contract: colour" in notes
    assert [Path(f).name for f in ds.source_files] == ["events.csv", "items.csv"]


def test_strict_names_file_row_and_field(tmp_path):
    d = _write(tmp_path, events_csv=EVENTS, items_csv=ITEMS)
    with pytest.raises(DataValidationError) as info:
        load_dataset("files", str(d), strict=True)
    assert (info.value.file, info.value.row, info.value.field) == ("events.csv", 4, "item_id")


def test_bad_row_in_csv_is_reported_with_file_and_row(tmp_path):
    bad = EVENTS.replace("1609459300", "2021-13-45")
    d = _write(tmp_path, events_csv=bad, items_csv=ITEMS)
    with pytest.raises(DataValidationError, match=r"^events.csv row 2, field 'timestamp': cannot parse '2021-13-45'"):
        load_dataset("files", str(d))
    d2 = _write(tmp_path / "b", events_csv=EVENTS, items_csv=ITEMS + "008,dup,,,\n")
    dup = r"items.csv row 3, field 'item_id': duplicate item_id '008': rows 2 and 3"
    with pytest.raises(DataValidationError, match=dup):
        load_dataset("files", str(d2))


def test_users_table_filters_unknown_users(tmp_path):
    d = _write(tmp_path, events_csv=EVENTS, items_csv=ITEMS, users_csv="user_id,age\nu1,30\n")
    ds = load_dataset("files", str(d))
    assert set(ds.events["user_id"]) == {"u1"}
    # u2 has two events; one of them also has an unknown item (the two counts may overlap)
    assert ds.report.n_events_unknown_user == 2 and ds.report.unknown_user_examples == ("u2",)


def test_parquet_and_protocol(tmp_path):
    d = tmp_path / "pq"
    d.mkdir()
    events = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10], "event_type": "purchase",
                           "timestamp": [5, 6, 7], "order_id": ["o1", "o2", "o3"]})
    events.to_parquet(d / "events.parquet")
    pd.DataFrame({"item_id": [10, 11], "price": [1.0, None]}).to_parquet(d / "items.parquet")
    ds = load_dataset("files", str(d), protocol="leave_last_order_out")
    assert ds.protocol == "leave_last_order_out"
    assert ds.events["user_id"].tolist() == ["1", "1", "2"] and ds.events["item_id"].tolist() == ["10", "11", "10"]
    assert ds.fingerprint() == dataset_fingerprint("files", str(d), protocol="leave_last_order_out")
    assert ds.fingerprint() != dataset_fingerprint("files", str(d))


def test_last_order_protocol_needs_order_ids(tmp_path):
    d = _write(tmp_path, events_csv="user_id,item_id,event_type,timestamp\nu,a,click,1\n", items_csv="item_id\na\n")
    with pytest.raises(DataValidationError, match="needs order ids"):
        load_dataset("files", str(d), protocol="leave_last_order_out")
    with pytest.raises(ValueError, match="protocol must be one of"):
        load_dataset("files", str(d), protocol="random")


def test_fingerprint_follows_file_bytes(tmp_path):
    d = _write(tmp_path, events_csv=EVENTS, items_csv=ITEMS)
    first = load_dataset("files", str(d)).fingerprint()
    assert first == dataset_fingerprint("files", str(d)) and len(first) == 64
    assert first == dataset_fingerprint("files", str(d), strict=True)  # strict does not change the data
    (d / "items.csv").write_text(ITEMS.replace("Bond mug", "Bond cup"), encoding="utf-8")
    assert dataset_fingerprint("files", str(d)) != first


def test_missing_and_ambiguous_files(tmp_path):
    with pytest.raises(ValueError, match="pass path="):
        load_dataset("files")
    with pytest.raises(DatasetNotFoundError, match="is not a directory"):
        load_dataset("files", str(tmp_path / "nope"))
    d = _write(tmp_path / "x", events_csv=EVENTS)
    with pytest.raises(DatasetNotFoundError, match=r"no items.csv or items.parquet \(files found: \['events.csv'\]\)"):
        load_dataset("files", str(d))
    _write(d, items_csv=ITEMS)
    pd.DataFrame({"item_id": ["1"]}).to_parquet(d / "items.parquet")
    with pytest.raises(DatasetNotFoundError, match="both items.csv and items.parquet"):
        load_dataset("files", str(d))


def test_malformed_and_empty_csv(tmp_path):
    d = _write(tmp_path / "m", events_csv="user_id,item_id,event_type,timestamp\nu,a,click,1,extra\n",
               items_csv="item_id\na\n")
    with pytest.raises(DataValidationError, match="events.csv row 1: has more fields than the header"):
        load_dataset("files", str(d))
    d = _write(tmp_path / "m2", events_csv="user_id,item_id,event_type,timestamp\nu,a,click,1\nu,b,click,2,x\n",
               items_csv="item_id\na\n")
    with pytest.raises(DataValidationError, match="events.csv row 2: has 5 fields but the header has 4"):
        load_dataset("files", str(d))
    e = _write(tmp_path / "e", events_csv="", items_csv="item_id\na\n")
    with pytest.raises(DataValidationError, match="events.csv: is empty"):
        load_dataset("files", str(e))


def test_excel_bom_and_padded_header_are_accepted(tmp_path):
    d = tmp_path / "bom"
    d.mkdir()
    (d / "events.csv").write_bytes("\ufeffuser_id, item_id ,event_type,timestamp\nu,a,Click,1\n".encode("utf-8"))
    (d / "items.csv").write_text("item_id\na\n", encoding="utf-8")
    ds = load_dataset("files", str(d))
    assert ds.events[["user_id", "item_id", "event_type"]].values.tolist() == [["u", "a", "click"]]
