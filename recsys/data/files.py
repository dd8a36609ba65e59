"""Your own data: a directory of CSV or Parquet files in the canonical contract.

Layout of ``path``::

    events.csv | events.parquet   required: user_id, item_id, event_type, timestamp
                                  optional: order_id, session_id, dwell_ms
    items.csv  | items.parquet    required: item_id
                                  optional: title, description, category, brand, price, created_at
    users.csv  | users.parquet    optional; a user_id column (other columns are ignored)

CSV files are UTF-8 with a header row; every cell is read as text (ids keep
leading zeros) and then parsed. Timestamps are epoch seconds or ISO-8601.
Errors name the file, the data row (the header is not counted) and the field.
Events whose item (or, with a users table, user) is unknown are dropped and
counted in the load report, or fail the load with ``strict=True``.

Order of a user's events (it decides the splits): by ``timestamp``, and events
with the same timestamp keep **the order of their rows in the events file**
(the rule RecBole uses). Write simultaneous events in the order they happened,
or give them distinct timestamps. The item id never breaks a tie.
"""
from __future__ import annotations

import os
import re
import warnings

import pandas as pd

from recsys.data.assemble import build_dataset
from recsys.data.contract import (
    LEAVE_ONE_OUT,
    PROTOCOLS,
    DataValidationError,
    Dataset,
    DatasetNotFoundError,
    ignored_columns,
    missing_optional_columns,
    validate_events,
    validate_items,
    validate_users,
)

NAME = "files"
VERSION = 2  # bump when reading/mapping changes (part of the fingerprint); 2: ties keep file order
EXTENSIONS = (".csv", ".parquet")


def find_table(directory: str, stem: str, required: bool = True) -> str | None:
    """``<directory>/<stem>.csv`` or ``.parquet``; error if both or (when required) neither exist."""
    found = [os.path.join(directory, stem + ext) for ext in EXTENSIONS
             if os.path.isfile(os.path.join(directory, stem + ext))]
    if len(found) > 1:
        raise DatasetNotFoundError(
            f"{directory} has both {stem}.csv and {stem}.parquet; keep only one of them so it is clear "
            "which one to read")
    if not found:
        if not required:
            return None
        listing = sorted(os.listdir(directory))
        raise DatasetNotFoundError(
            f"{directory} has no {stem}.csv or {stem}.parquet (files found: {listing or 'none'}); "
            "see recsys/data/files.py for the expected layout")
    return found[0]


def source_files(path: str | None) -> tuple[str, ...]:
    """The events, items and (if present) users files of the directory ``path``."""
    if path is None:
        raise ValueError("the 'files' dataset reads your own data: pass path=<a directory with "
                         "events.csv|parquet and items.csv|parquet>")
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        raise DatasetNotFoundError(f"{directory} is not a directory; pass the directory that holds "
                                   "events.csv|parquet and items.csv|parquet")
    files = [find_table(directory, "events"), find_table(directory, "items")]
    users = find_table(directory, "users", required=False)
    if users is not None:
        files.append(users)
    return tuple(f for f in files if f is not None)


_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_csv(path: str) -> pd.DataFrame:
    """All cells as text; a row with more fields than the header is an error, not an index."""
    with warnings.catch_warnings():
        # With index_col=False pandas only warns (and drops data) when the first data row is too long.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)


def read_table(path: str) -> pd.DataFrame:
    """Read one CSV (all cells as text) or Parquet file; unreadable files raise DataValidationError."""
    source = os.path.basename(path)
    try:
        if path.endswith(".parquet"):
            return pd.read_parquet(path)
        return _read_csv(path)
    except UnicodeDecodeError as e:
        raise DataValidationError(source, None, None,
                                  f"is not valid UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8") from e
    except pd.errors.EmptyDataError as e:
        raise DataValidationError(source, None, None, "is empty; it needs a header row and data rows") from e
    except pd.errors.ParserWarning as e:
        raise DataValidationError(source, 1, None,
                                  "has more fields than the header; quote values that contain commas, "
                                  "and give every row as many fields as the header") from e
    except pd.errors.ParserError as e:
        match = _FIELD_COUNT.search(str(e))
        if match:
            expected, line, saw = (int(g) for g in match.groups())
            raise DataValidationError(source, line - 1, None,
                                      f"has {saw} fields but the header has {expected}; quote values that "
                                      "contain commas, and give every row as many fields as the header") from e
        raise DataValidationError(source, None, None,
                                  f"is not a well-formed CSV ({e}); quote values that contain commas, "
                                  "and give every row as many fields as the header") from e
    except (OSError, ValueError) as e:
        raise DataValidationError(source, None, None, f"cannot be read ({e})") from e


def params(protocol: str = LEAVE_ONE_OUT, strict: bool = False) -> dict[str, object]:
    """Parameters that shape the output (the fingerprint's; ``strict`` does not change the data)."""
    del strict
    return {"version": VERSION, "protocol": protocol}


def load(path: str | None = None, *, protocol: str = LEAVE_ONE_OUT, strict: bool = False) -> Dataset:
    """Load a directory of events/items(/users) files in the canonical form.

    Args:
      path: the directory (see the module docstring for its layout).
      protocol: ``"leave_one_out"`` (one target per interaction) or
        ``"leave_last_order_out"`` (the user's last order is the target; needs order ids).
      strict: raise on events with an unknown item/user instead of dropping and counting them.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    files = source_files(path)
    events_path, items_path = files[0], files[1]
    users_path = files[2] if len(files) > 2 else None
    events_src, items_src = os.path.basename(events_path), os.path.basename(items_path)

    raw_events = read_table(events_path)
    raw_items = read_table(items_path)
    events = validate_events(raw_events, events_src)
    items = validate_items(raw_items, items_src)
    users = None
    users_src = "users"
    notes = [f"read {len(raw_events):,} events from {events_src} and {len(raw_items):,} items from {items_src}"]
    if users_path is not None:
        users_src = os.path.basename(users_path)
        raw_users = read_table(users_path)
        users = validate_users(raw_users, users_src)
        notes.append(f"read {len(users):,} users from {users_src}; events of other users are not kept")
    for raw, src, kind in ((raw_events, events_src, "events"), (raw_items, items_src, "items")):
        absent = missing_optional_columns(raw, kind)
        if absent:
            notes.append(f"{src} has no column {', '.join(absent)} (optional; not used)")
        extra = ignored_columns(raw, kind)
        if extra:
            notes.append(f"{src}: ignored columns not in the contract: {', '.join(extra)}")
    if protocol == "leave_last_order_out" and (events["order_id"] == "").all():
        raise DataValidationError(
            events_src, None, "order_id",
            "protocol 'leave_last_order_out' needs order ids, but the column is missing or empty; add "
            "order_id or use protocol='leave_one_out'")
    return build_dataset(
        NAME, events, items,
        protocol=protocol,
        source_files=files,
        params=params(protocol),
        events_source=events_src,
        items_source=items_src,
        users=users,
        users_source=users_src,
        strict=strict,
        notes=notes,
    )
