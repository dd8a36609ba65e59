"""The canonical input contract: schemas, validation, the load report and the dataset.

Every adapter (MovieLens, Instacart, a user's own files, the synthetic generator)
turns its source into two typed frames with exactly these columns:

* **events** -- ``user_id`` (str), ``item_id`` (str), ``event_type`` (str in
  :data:`EVENT_TYPES`), ``timestamp`` (int64 epoch seconds, UTC), ``order_id``
  (str, ``""`` when none), ``session_id`` (str, ``""`` when none), ``dwell_ms``
  (float64, NaN when missing). Input files need the first four.
* **items** -- ``item_id`` (str, unique), ``title``, ``description``,
  ``category`` (levels joined by ``" > "``, ``""`` if unknown), ``brand`` (all
  str, ``""`` if none), ``price`` (float64, NaN if missing), ``created_at``
  (int64 epoch seconds, ``-1`` if unknown). Input files need ``item_id``.

:func:`validate_events` / :func:`validate_items` check raw frames (as read from
a file) and return the canonical frames; problems raise
:class:`DataValidationError` naming the file, the row and the field. Row numbers
count data rows from 1, the header excluded (in a spreadsheet that row is on
line ``row + 1``).

This module imports pandas and numpy only (no TensorFlow).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

EVENT_TYPES = ("impression", "click", "like", "cart", "purchase")
from recsys.names import LEAVE_LAST_ORDER_OUT, LEAVE_ONE_OUT, PROTOCOLS  # noqa: E402,F401  (re-exported)

EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp", "order_id", "session_id", "dwell_ms")
REQUIRED_EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")
ITEM_COLUMNS = ("item_id", "title", "description", "category", "brand", "price", "created_at")
REQUIRED_ITEM_COLUMNS = ("item_id",)
USER_COLUMNS = ("user_id",)

CATEGORY_SEPARATOR = " > "
MISSING_CREATED_AT = -1
# Bumped when the canonical frames change meaning; part of every fingerprint.
CONTRACT_VERSION = 3  # 2: ties in time keep file order (was: item id order); 3: targets carry their
# behaviour, exact duplicate event rows are dropped

# Epoch seconds beyond year 3000 are almost certainly milliseconds.
_MAX_EPOCH_SECONDS = 32_503_680_000
_MIN_EPOCH_SECONDS = -62_135_596_800  # year 1
_ISO_8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_TIMESTAMP_HINT = "expected epoch seconds or ISO-8601"


class DataValidationError(ValueError):
    """Input data that breaks the contract.

    Attributes:
      file: the file (or source) name as the user knows it, e.g. ``"events.csv"``.
      row: 1-based data row number (header not counted), or ``None`` when the
        problem is not about one row (a missing column, an empty file).
      field: the column concerned, or ``None``.
      problem: the message without the location prefix.
    """

    def __init__(self, file: str, row: int | None, field: str | None, problem: str):
        self.file = file
        self.row = row
        self.field = field
        self.problem = problem
        where = file
        if row is not None:
            where += f" row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # keep pickling (e.g. across Beam workers) working
        return (type(self), (self.file, self.row, self.field, self.problem))


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files (or the package that ships them) are not available."""


# --- low-level column parsers ------------------------------------------------


def _raise_at(source: str, field: str, bad: np.ndarray, describe: Callable[[int], str]) -> None:
    """Raise for the first ``True`` position of ``bad`` (0-based positions → 1-based rows)."""
    positions = np.flatnonzero(bad)
    if positions.size == 0:
        return
    first = int(positions[0])
    problem = describe(first)
    more = positions.size - 1
    if more:
        shown = ", ".join(str(int(p) + 1) for p in positions[1:6])
        problem += f" ({more} more row{'s' if more > 1 else ''} in this column have problems too, e.g. row {shown})"
    raise DataValidationError(source, first + 1, field, problem)


_EDGE_SPACE_CHARS = " \t\r\n\f\v\xa0\u3000"


def _strip(values: pd.Series) -> pd.Series:
    """``str.strip`` every element of an all-``str`` Series, skipping the work when nothing needs it."""
    if len(values) == 0:
        return values
    try:
        joined = "\x00".join(values.to_numpy(dtype=object))
    except TypeError:  # not all str
        return values.astype(str).str.strip()
    padded = "\x00" + joined + "\x00"
    if not any("\x00" + c in padded or c + "\x00" in padded for c in _EDGE_SPACE_CHARS):
        return values
    return values.str.strip()


def _number_to_id(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def as_id_strings(values: pd.Series) -> pd.Series:
    """Ids as stripped strings (``""`` where missing); integral floats lose their ``.0``."""
    values = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_integer_dtype(values.dtype) and not values.isna().any():
        return values.astype(np.int64).astype(str).astype(object)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "empty"):
        return _strip(values.astype(object).fillna("")).astype(object)
    return values.map(_number_to_id).astype(object)


def as_text(values: pd.Series) -> pd.Series:
    """Free text as ``str`` with ``""`` where missing (surrounding whitespace removed)."""
    values = pd.Series(values).reset_index(drop=True)
    out = values.astype(object).where(values.notna(), "")
    if pd.api.types.infer_dtype(out, skipna=False) not in ("string", "empty"):
        out = out.astype(str)
    return _strip(out).astype(object)


def _raw(values: pd.Series, pos: int) -> Any:
    return values.iloc[pos]


def _numeric_text(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(float64 values, empty mask)`` of a text/object column; unparseable non-empty cells are NaN."""
    obj = values.astype(object)
    missing = obj.isna().to_numpy()
    num = pd.to_numeric(obj.where(~missing, ""), errors="coerce").to_numpy(dtype=np.float64)
    empty = missing.copy()
    maybe_blank = np.flatnonzero(np.isnan(num) & ~missing)
    if maybe_blank.size:
        empty[maybe_blank] = [str(v).strip() == "" for v in obj.to_numpy()[maybe_blank]]
    return num, empty


def parse_numbers(
    values: pd.Series,
    source: str,
    field: str,
    what: str = "a number",
    minimum: float | None = None,
) -> np.ndarray:
    """Parse a numeric column to float64 (NaN where empty).

    Raises:
      DataValidationError: a non-empty value is not a finite number, or is below ``minimum``.
    """
    values = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataValidationError(source, None, field, f"expected {what}, got true/false values")
    if pd.api.types.is_numeric_dtype(values.dtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        empty = np.isnan(num)
    else:
        num, empty = _numeric_text(values)
    bad = ~empty & ~np.isfinite(num)
    _raise_at(source, field, bad,
              lambda p: f"cannot parse {_raw(values, p)!r} as {what} (write a plain number such as 3.5, "
                        "without units or currency symbols)")
    if minimum is not None:
        low = ~empty & (num < minimum)
        _raise_at(source, field, low, lambda p: f"{what} must be >= {minimum:g}, got {_raw(values, p)!r}")
    return num


def parse_timestamps(
    values: pd.Series,
    source: str = "<input>",
    field: str = "timestamp",
    missing: int | None = None,
) -> np.ndarray:
    """Parse timestamps to int64 epoch seconds (UTC).

    Accepts integers and floats (epoch seconds; fractions are floored), numeric
    strings, and ISO-8601 strings (``2021-03-04``, ``2021-03-04T10:00:00``,
    ``2021-03-04 10:00:00+02:00``, ``...Z``); ISO values without an offset are
    taken as UTC.

    Args:
      missing: value for empty cells; ``None`` makes an empty cell an error.

    Raises:
      DataValidationError: naming the first row that cannot be parsed.
    """
    values = pd.Series(values).reset_index(drop=True)
    n = len(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataValidationError(source, None, field, f"got true/false values ({_TIMESTAMP_HINT})")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        dt = pd.to_datetime(values, utc=True)
        empty = dt.isna().to_numpy()
        secs = np.where(empty, 0, dt.to_numpy(dtype="datetime64[ns]").view(np.int64) // 10**9)
        num = secs.astype(np.float64)
        iso_ok = np.zeros(n, dtype=bool)
    elif pd.api.types.is_numeric_dtype(values.dtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        empty = np.isnan(num)
        iso_ok = np.zeros(n, dtype=bool)
    else:
        num, empty = _numeric_text(values)
        iso_ok = np.zeros(n, dtype=bool)
        candidates = np.flatnonzero(~empty & np.isnan(num))
        if candidates.size:
            cand_text = [str(v).strip() for v in values.to_numpy(dtype=object)[candidates]]
            looks_iso = np.fromiter((bool(_ISO_8601.match(s)) for s in cand_text), dtype=bool, count=len(cand_text))
            idx = candidates[looks_iso]
            if idx.size:
                parsed = pd.to_datetime(pd.Series([cand_text[i] for i in np.flatnonzero(looks_iso)]),
                                        utc=True, errors="coerce")
                ok = parsed.notna().to_numpy()
                ns = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
                num[idx[ok]] = (ns[ok] // 10**9).astype(np.float64)
                iso_ok[idx[ok]] = True
    if missing is None:
        _raise_at(source, field, empty, lambda p: f"missing timestamp ({_TIMESTAMP_HINT})")
    bad = ~empty & ~np.isfinite(num)
    _raise_at(source, field, bad,
              lambda p: f"cannot parse {_raw(values, p)!r} as a timestamp ({_TIMESTAMP_HINT})")
    too_big = ~empty & ~iso_ok & (num > _MAX_EPOCH_SECONDS)
    _raise_at(source, field, too_big,
              lambda p: f"{_raw(values, p)!r} is after the year 3000 as epoch seconds; it looks like "
                        "milliseconds or microseconds: convert it to seconds (divide by 1000)")
    too_small = ~empty & (num < _MIN_EPOCH_SECONDS)
    _raise_at(source, field, too_small,
              lambda p: f"{_raw(values, p)!r} is before the year 1 ({_TIMESTAMP_HINT})")
    out = np.floor(np.where(empty, 0.0, num)).astype(np.int64)
    if missing is not None:
        out[empty] = missing
    return out


# --- frame validation ----------------------------------------------------------


def _prepare(df: pd.DataFrame, source: str, required: Iterable[str], what: str) -> pd.DataFrame:
    """Type check, strip column names, and require the ``required`` columns."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{source}: expected a pandas DataFrame of {what}, got {type(df).__name__}")
    df = _normalise_columns(df)
    found = [str(c) for c in df.columns]
    for col in required:
        if col not in found:
            raise DataValidationError(
                source, None, col,
                f"required column {col!r} is missing; columns found: {found or 'none'}. "
                f"The {what} file needs the columns {', '.join(required)} (header row, exact lower-case names).")
    return df


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Strip surrounding whitespace from column names (``" item_id"`` → ``"item_id"``)."""
    renamed = {c: str(c).strip() for c in df.columns if str(c).strip() != c}
    return df.rename(columns=renamed) if renamed else df


def _required_ids(df: pd.DataFrame, source: str, field: str) -> pd.Series:
    ids = as_id_strings(df[field])
    _raise_at(source, field, (ids == "").to_numpy(),
              lambda p: f"empty {field}; every row needs a {field}")
    return ids


def missing_optional_columns(df: pd.DataFrame, kind: str) -> tuple[str, ...]:
    """Optional canonical columns absent from a raw ``events`` or ``items`` frame."""
    columns = {"events": EVENT_COLUMNS, "items": ITEM_COLUMNS}[kind]
    required = {"events": REQUIRED_EVENT_COLUMNS, "items": REQUIRED_ITEM_COLUMNS}[kind]
    present = {str(c).strip() for c in df.columns}
    return tuple(c for c in columns if c not in required and c not in present)


def ignored_columns(df: pd.DataFrame, kind: str) -> tuple[str, ...]:
    """Columns of a raw frame that are not part of the contract (they are ignored)."""
    columns = {"events": EVENT_COLUMNS, "items": ITEM_COLUMNS, "users": USER_COLUMNS}[kind]
    return tuple(str(c).strip() for c in df.columns if str(c).strip() not in columns)


def validate_events(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a raw events frame and return the canonical, typed one (same row order).

    Event types are matched case-insensitively (``"Click"`` → ``"click"``).

    Raises:
      DataValidationError: missing required column, no rows, empty id, unknown
        event type, unparseable timestamp or non-numeric/negative ``dwell_ms``.
    """
    df = _prepare(df, source, REQUIRED_EVENT_COLUMNS, "events")
    if len(df) == 0:
        raise DataValidationError(source, None, None, "has no data rows; an events file needs at least one event")
    n = len(df)
    user_id = _required_ids(df, source, "user_id")
    item_id = _required_ids(df, source, "item_id")
    raw_type = df["event_type"].reset_index(drop=True)
    event_type = as_text(raw_type).str.lower()
    _raise_at(source, "event_type", (~event_type.isin(EVENT_TYPES)).to_numpy(),
              lambda p: f"unknown event type {raw_type.iloc[p]!r}; allowed: {', '.join(EVENT_TYPES)}")
    timestamp = parse_timestamps(df["timestamp"], source, "timestamp")
    order_id = as_id_strings(df["order_id"]) if "order_id" in df else pd.Series([""] * n, dtype=object)
    session_id = as_id_strings(df["session_id"]) if "session_id" in df else pd.Series([""] * n, dtype=object)
    dwell = (parse_numbers(df["dwell_ms"], source, "dwell_ms", "a duration in milliseconds", minimum=0)
             if "dwell_ms" in df else np.full(n, np.nan))
    return pd.DataFrame({
        "user_id": user_id.to_numpy(dtype=object),
        "item_id": item_id.to_numpy(dtype=object),
        "event_type": event_type.to_numpy(dtype=object),
        "timestamp": timestamp.astype(np.int64),
        "order_id": order_id.to_numpy(dtype=object),
        "session_id": session_id.to_numpy(dtype=object),
        "dwell_ms": np.asarray(dwell, dtype=np.float64),
    }, columns=list(EVENT_COLUMNS))


def normalise_category(values: pd.Series) -> pd.Series:
    """Category paths with levels joined by ``" > "`` (``"a>b "`` → ``"a > b"``; empty levels dropped)."""
    text = as_text(values)
    needs = text.str.contains(">", regex=False) & (text != "")
    if needs.any():
        text = text.copy()
        text[needs] = [
            CATEGORY_SEPARATOR.join(part.strip() for part in t.split(">") if part.strip())
            for t in text[needs]
        ]
    return text.astype(object)


def _reject_duplicates(ids: pd.Series, source: str, field: str) -> None:
    dup = ids.duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    later = ids.duplicated(keep="first").to_numpy()
    second = int(np.flatnonzero(later)[0])
    value = ids.iloc[second]
    first = int(np.flatnonzero((ids == value).to_numpy())[0])
    n_dup = int(later.sum())
    extra = f" ({n_dup - 1} more duplicate rows follow)" if n_dup > 1 else ""
    raise DataValidationError(
        source, second + 1, field,
        f"duplicate {field} {value!r}: rows {first + 1} and {second + 1}{extra}; "
        f"each {field} must appear once (merge or remove the duplicate rows)")


def validate_items(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a raw items frame and return the canonical, typed one (same row order).

    Raises:
      DataValidationError: missing ``item_id`` column, empty or duplicate item
        id, non-numeric or negative price, unparseable ``created_at``.
    """
    df = _prepare(df, source, REQUIRED_ITEM_COLUMNS, "items")
    n = len(df)
    item_id = _required_ids(df, source, "item_id")
    _reject_duplicates(item_id, source, "item_id")

    def text(col: str) -> np.ndarray:
        return as_text(df[col]).to_numpy(dtype=object) if col in df else np.full(n, "", dtype=object)

    category = normalise_category(df["category"]).to_numpy(dtype=object) if "category" in df else text("category")
    price = (parse_numbers(df["price"], source, "price", "a price", minimum=0)
             if "price" in df else np.full(n, np.nan))
    created_at = (parse_timestamps(df["created_at"], source, "created_at", missing=MISSING_CREATED_AT)
                  if "created_at" in df else np.full(n, MISSING_CREATED_AT, dtype=np.int64))
    return pd.DataFrame({
        "item_id": item_id.to_numpy(dtype=object),
        "title": text("title"),
        "description": text("description"),
        "category": category,
        "brand": text("brand"),
        "price": np.asarray(price, dtype=np.float64),
        "created_at": np.asarray(created_at, dtype=np.int64),
    }, columns=list(ITEM_COLUMNS))


def validate_users(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a raw users frame (a ``user_id`` column; other columns are ignored)."""
    df = _prepare(df, source, USER_COLUMNS, "users")
    user_id = _required_ids(df, source, "user_id")
    _reject_duplicates(user_id, source, "user_id")
    return pd.DataFrame({"user_id": user_id.to_numpy(dtype=object)})


# --- report and dataset --------------------------------------------------------


def _fmt(n: int) -> str:
    return f"{n:,}"


@dataclass(frozen=True)
class LoadReport:
    """What a loader read, dropped and assumed. ``summary()`` renders it for people."""

    n_events: int
    n_users: int
    n_items: int  # rows of the items table (the catalog)
    n_items_with_events: int = 0
    n_orders: int = 0  # distinct non-empty order ids
    event_type_counts: tuple[tuple[str, int], ...] = ()
    n_items_with_category: int = 0
    n_items_with_text: int = 0  # title or description non-empty
    # Dropped-event counts are per reason; an event with an unknown item and user counts in both.
    n_events_unknown_item: int = 0
    unknown_item_examples: tuple[str, ...] = ()
    n_events_unknown_user: int | None = None  # None: no users table given
    unknown_user_examples: tuple[str, ...] = ()
    unused_optional_fields: tuple[str, ...] = ()  # "events.dwell_ms", "items.price", ...
    notes: tuple[str, ...] = ()
    # Exact duplicate event rows (every field equal) dropped, first occurrence kept.
    n_duplicate_events: int = 0
    duplicate_examples: tuple[str, ...] = ()
    # What the time split will make of the events (see :func:`split_sizes`).
    n_training_pairs: int | None = None
    n_users_evaluable: int | None = None

    def summary(self) -> str:
        """A readable multi-line summary."""
        types = ", ".join(f"{t} {_fmt(c)}" for t, c in self.event_type_counts) or "none"
        lines = [
            f"events: {_fmt(self.n_events)} ({types})",
            f"users: {_fmt(self.n_users)}",
            f"items: {_fmt(self.n_items)} in the catalog, {_fmt(self.n_items_with_events)} with events, "
            f"{_fmt(self.n_items_with_category)} with a category, {_fmt(self.n_items_with_text)} with text",
            f"orders: {_fmt(self.n_orders)}",
        ]
        if self.n_events_unknown_item:
            lines.append(f"dropped {_fmt(self.n_events_unknown_item)} events whose item is not in the items "
                         f"table (e.g. {', '.join(self.unknown_item_examples)})")
        else:
            lines.append("events with an unknown item: 0")
        if self.n_events_unknown_user is None:
            lines.append("events with an unknown user: not checked (no users table)")
        elif self.n_events_unknown_user:
            lines.append(f"dropped {_fmt(self.n_events_unknown_user)} events whose user is not in the users "
                         f"table (e.g. {', '.join(self.unknown_user_examples)})")
        else:
            lines.append("events with an unknown user: 0")
        if self.n_duplicate_events:
            lines.append(f"dropped {_fmt(self.n_duplicate_events)} duplicate event rows (every field "
                         f"equal to an earlier row; e.g. {'; '.join(self.duplicate_examples)})")
        else:
            lines.append("duplicate event rows: 0")
        if self.n_training_pairs is not None:
            lines.append(f"time split: {_fmt(self.n_training_pairs)} training pairs, "
                         f"{_fmt(self.n_users_evaluable or 0)} users with validation and test targets")
        lines.append("unused optional fields (missing or empty): "
                     + (", ".join(self.unused_optional_fields) or "none"))
        if self.notes:
            lines.append("notes:")
            lines.extend(f"  - {note}" for note in self.notes)
        return "\n".join(lines)


#: The retrieval trainers batch training pairs 1024 at a time and drop the last partial
#: batch (trainer/two_tower.py ``TwoTowerConfig.batch_size``), so fewer pairs than this
#: train nothing ("Expected input data to be non-empty").
DEFAULT_TRAINING_BATCH_SIZE = 1024
#: A user needs this many units (interactions, or orders for basket data) to give a
#: training target, a validation target and a test target.
MIN_UNITS_PER_EVALUABLE_USER = 3


def split_sizes(events: pd.DataFrame, protocol: str) -> tuple[int, int]:
    """(training pairs, users with validation and test targets) of the time split.

    Mirrors ``transform.sequences.build_user_rows``: a user's interactions (click, like,
    cart, purchase; impressions are not targets) are cut into units -- one per
    interaction for leave-one-out data, one per order for basket data (an event
    without an order id is an order of its own); the first unit only starts the
    history, the last two are the test and validation targets when there are at least
    three, and every other unit is a training pair.
    """
    from recsys.features import INTERACTION_TYPES

    acts = events[events["event_type"].isin(INTERACTION_TYPES)]
    if len(acts) == 0:
        return 0, 0
    if protocol == LEAVE_LAST_ORDER_OUT:
        unit = acts["order_id"].where(acts["order_id"] != "",
                                      "\x00row" + pd.Series(range(len(acts)), index=acts.index)
                                      .astype(str))
        units = acts.assign(_unit=unit).groupby("user_id")["_unit"].nunique()
    else:
        units = acts.groupby("user_id").size()
    units = units.to_numpy()
    evaluable = units >= MIN_UNITS_PER_EVALUABLE_USER
    pairs = int(np.where(evaluable, units - 3, np.maximum(units - 1, 0)).sum())
    return pairs, int(evaluable.sum())


def check_trainable(dataset: "Dataset", batch_size: int = DEFAULT_TRAINING_BATCH_SIZE) -> None:
    """Raises :class:`DataValidationError` saying what is too small, and what to do,
    when the time split of ``dataset`` cannot train and evaluate a model with
    ``batch_size`` (call it before starting the pipeline)."""
    pairs, evaluable = split_sizes(dataset.events, dataset.protocol)
    raise_if_untrainable(dataset.name, dataset.protocol, pairs, evaluable, batch_size)


def raise_if_untrainable(source: str, protocol: str, pairs: int, evaluable: int,
                         batch_size: int = DEFAULT_TRAINING_BATCH_SIZE) -> None:
    """:func:`check_trainable`'s verdict from the :func:`split_sizes` of dataset ``source`` (they can be summed
    over parts of its users: ``recsys.data.streaming.check_trainable_by_shard``)."""
    unit = "orders" if protocol == LEAVE_LAST_ORDER_OUT else "interactions"
    if evaluable == 0:
        raise DataValidationError(
            source, None, None,
            f"too little data to split: no user has {MIN_UNITS_PER_EVALUABLE_USER} or more {unit} "
            f"(click, like, cart or purchase events), so there is no validation or test target. "
            f"Each user needs {MIN_UNITS_PER_EVALUABLE_USER}+ {unit}: one to train on, one to "
            f"validate, one to test. Add events (more history per user), or check that user ids "
            f"are stable across events.")
    if pairs < batch_size:
        raise DataValidationError(
            source, None, None,
            f"too little data to train: the time split gives {pairs:,} training pairs "
            f"({evaluable:,} users with {MIN_UNITS_PER_EVALUABLE_USER}+ {unit}), fewer than one "
            f"training batch of {batch_size:,} (the trainers drop incomplete batches). Add "
            f"events (more users, or longer histories), or train with a batch size of at most "
            f"{max(pairs, 1):,}.")


def compute_fingerprint(name: str, params: Mapping[str, Any], source_files: Iterable[str]) -> str:
    """sha256 hex over the adapter name, its parameters and the bytes of its source files."""
    h = hashlib.sha256()
    head = {"adapter": name, "contract": CONTRACT_VERSION, "params": dict(params)}
    h.update(json.dumps(head, sort_keys=True, default=str).encode("utf-8"))
    for path in source_files:
        h.update(b"\0file\0" + os.path.basename(path).encode("utf-8") + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset in the canonical form (``eq=False``: frames are not comparable)."""

    name: str
    events: pd.DataFrame
    items: pd.DataFrame
    protocol: str
    source_files: tuple[str, ...]
    report: LoadReport
    synthetic: bool = False
    params: tuple[tuple[str, Any], ...] = ()  # the adapter parameters that shape the output

    def fingerprint(self) -> str:
        """Cache key: sha256 over adapter name, parameters and source-file bytes."""
        return compute_fingerprint(self.name, dict(self.params), self.source_files)
