"""Turn validated frames into a :class:`~recsys.data.contract.Dataset`.

Shared by every adapter. It applies the unknown-item / unknown-user policy,
sorts the events canonically and builds the :class:`LoadReport`.

Policy for events whose item is not in the items table (and, when a users table
is given, whose user is not in it): they are never dropped silently. By default
they are dropped from the dataset, counted and listed in the report, and a
warning goes to the ``recsys.data`` logger; with ``strict=True`` the load fails
with a :class:`DataValidationError` naming the first such row instead.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from recsys.data.contract import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    ITEM_COLUMNS,
    MISSING_CREATED_AT,
    PROTOCOLS,
    DEFAULT_TRAINING_BATCH_SIZE,
    DataValidationError,
    Dataset,
    LoadReport,
    split_sizes,
)

log = logging.getLogger("recsys.data")

N_EXAMPLES = 5


def _unknown(
    events: pd.DataFrame, column: str, known: pd.Series, *, source: str, table: str, strict: bool,
) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """Mask of events whose ``column`` is absent from ``known``; raises when strict."""
    mask = ~events[column].isin(known).to_numpy()
    n = int(mask.sum())
    if n == 0:
        return mask, 0, ()
    unknown_values = pd.unique(events[column].to_numpy()[mask])
    examples = tuple(str(v) for v in unknown_values[:N_EXAMPLES])
    what = column.removesuffix("_id")
    if strict:
        first = int(np.flatnonzero(mask)[0])
        raise DataValidationError(
            source, first + 1, column,
            f"{what} {examples[0]!r} is not in the {table} table ({n:,} events reference "
            f"{len(unknown_values):,} unknown {what}s, e.g. {', '.join(examples)}). Add them to the {table} "
            f"table, or load with strict=False to drop these events (they are counted in the load report).")
    log.warning(
        "%s: dropping %d events whose %s is not in the %s table (%d distinct, e.g. %s); "
        "add them to the %s table or load with strict=True to stop on them.",
        source, n, column, table, len(unknown_values), ", ".join(examples), table)
    return mask, n, examples


#: ``time_key(timestamps [N] int64) -> [N]`` sortable key; events with equal keys keep file order.
TimeKey = Callable[[np.ndarray], np.ndarray]


def canonical_sort(events: pd.DataFrame, time_key: TimeKey | None = None) -> pd.DataFrame:
    """Events sorted stably by ``(user_id, time_key(timestamp))``, with a fresh RangeIndex.

    The sort is stable, so events of one user with equal keys keep the order of
    ``events``' rows, which is the order of the source file: **ties are kept in
    file order** (RecBole's rule). ``time_key`` defaults to the timestamp itself;
    MovieLens passes RecBole's float32 min-max-scaled timestamp so that
    timestamps float32 cannot tell apart also keep file order.

    The position of an event in the result (its index) is the ``seq`` the
    sequence builder sorts by, so this order is the one every split follows.
    """
    if len(events) == 0:
        return events.reset_index(drop=True)
    user = pd.factorize(events["user_id"], sort=True)[0]
    ts = events["timestamp"].to_numpy()
    key = ts if time_key is None else np.asarray(time_key(ts))
    if key.shape != ts.shape:
        raise ValueError(f"time_key returned shape {key.shape}, expected {ts.shape}")
    order = np.lexsort((key, user))  # last key is primary; numpy's lexsort is stable
    return events.iloc[order].reset_index(drop=True)


def _drop_duplicates(events: pd.DataFrame, source: str) -> tuple[pd.DataFrame, int, tuple[str, ...]]:
    """Drops exact duplicate event rows (every field equal), keeping the first; counts them.

    The documented rule: a row equal in user, item, event type, timestamp, order, session
    and dwell time to an earlier row is an export artefact, not a second interaction, so
    it is dropped (and counted in the load report, with examples, and logged). Rows that
    differ in any field -- two clicks a second apart, the same item in two orders -- are
    kept.
    """
    duplicated = events.duplicated(keep="first").to_numpy()
    n = int(duplicated.sum())
    if n == 0:
        return events, 0, ()
    rows = np.flatnonzero(duplicated)
    examples = tuple(
        f"row {int(events.index[r]) + 1}: user {events['user_id'].iat[r]}, item {events['item_id'].iat[r]}, "
        f"{events['event_type'].iat[r]} at {events['timestamp'].iat[r]}" for r in rows[:N_EXAMPLES])
    log.warning("%s: dropping %d duplicate event rows (every field equal to an earlier row), "
                "e.g. %s", source, n, examples[0])
    return events[~duplicated], n, examples


def _unused_fields(events: pd.DataFrame, items: pd.DataFrame) -> tuple[str, ...]:
    """Optional fields that carry no information (absent or empty in every row)."""
    empty_checks = {
        "events.order_id": lambda: (events["order_id"] == "").all(),
        "events.session_id": lambda: (events["session_id"] == "").all(),
        "events.dwell_ms": lambda: events["dwell_ms"].isna().all(),
        "items.title": lambda: (items["title"] == "").all(),
        "items.description": lambda: (items["description"] == "").all(),
        "items.category": lambda: (items["category"] == "").all(),
        "items.brand": lambda: (items["brand"] == "").all(),
        "items.price": lambda: items["price"].isna().all(),
        "items.created_at": lambda: (items["created_at"] == MISSING_CREATED_AT).all(),
    }
    return tuple(name for name, check in empty_checks.items() if bool(check()))


def build_dataset(
    name: str,
    events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    protocol: str,
    source_files: Iterable[str],
    params: Mapping[str, Any],
    events_source: str,
    items_source: str = "items",
    users: pd.DataFrame | None = None,
    users_source: str = "users",
    strict: bool = False,
    notes: Iterable[str] = (),
    synthetic: bool = False,
    time_key: TimeKey | None = None,
) -> Dataset:
    """Apply the unknown-item/user policy, sort, count, and wrap everything in a ``Dataset``.

    ``events`` and ``items`` must be canonical frames (from ``validate_*``) whose
    row order is the file's, so that strict-mode errors can name the file row
    and so that ties in time keep file order (:func:`canonical_sort`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if tuple(events.columns) != EVENT_COLUMNS or tuple(items.columns) != ITEM_COLUMNS:
        raise ValueError("build_dataset needs canonical frames; pass them through validate_events/validate_items")
    events = events.reset_index(drop=True)
    notes = list(notes)

    drop, n_unknown_item, item_examples = _unknown(
        events, "item_id", items["item_id"], source=events_source, table=items_source, strict=strict)
    n_unknown_user: int | None = None
    user_examples: tuple[str, ...] = ()
    if users is not None:
        user_drop, n_unknown_user, user_examples = _unknown(
            events, "user_id", users["user_id"], source=events_source, table=users_source, strict=strict)
        drop = drop | user_drop
    if drop.any():
        events = events[~drop]
    if len(events) == 0:
        raise DataValidationError(
            events_source, None, None,
            "no events left after dropping events with unknown items/users; check that the events "
            "and the items (and users) tables use the same ids")
    events, n_duplicates, duplicate_examples = _drop_duplicates(events, events_source)
    events = canonical_sort(events, time_key)
    n_training_pairs, n_users_evaluable = split_sizes(events, protocol)
    if n_training_pairs < DEFAULT_TRAINING_BATCH_SIZE or n_users_evaluable == 0:
        log.warning(
            "%s: the time split gives %d training pairs and %d users with validation and test "
            "targets; training needs at least %d pairs (one batch) and one such user "
            "(recsys.data.check_trainable says what to do).", events_source, n_training_pairs,
            n_users_evaluable, DEFAULT_TRAINING_BATCH_SIZE)

    counts = events["event_type"].value_counts()
    event_type_counts = tuple((t, int(counts[t])) for t in EVENT_TYPES if t in counts.index)
    orders = events["order_id"]
    report = LoadReport(
        n_events=len(events),
        n_users=int(events["user_id"].nunique()),
        n_items=len(items),
        n_items_with_events=int(events["item_id"].nunique()),
        n_orders=int(orders[orders != ""].nunique()),
        event_type_counts=event_type_counts,
        n_items_with_category=int((items["category"] != "").sum()),
        n_items_with_text=int(((items["title"] != "") | (items["description"] != "")).sum()),
        n_events_unknown_item=n_unknown_item,
        unknown_item_examples=item_examples,
        n_events_unknown_user=n_unknown_user,
        unknown_user_examples=user_examples,
        unused_optional_fields=_unused_fields(events, items),
        notes=tuple(notes),
        n_duplicate_events=n_duplicates,
        duplicate_examples=duplicate_examples,
        n_training_pairs=n_training_pairs,
        n_users_evaluable=n_users_evaluable,
    )
    return Dataset(
        name=name,
        events=events,
        items=items.reset_index(drop=True),
        protocol=protocol,
        source_files=tuple(str(f) for f in source_files),
        report=report,
        synthetic=synthetic,
        params=tuple(sorted(params.items())),
    )
