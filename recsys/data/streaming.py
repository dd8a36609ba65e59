"""Datasets whose events are read or made where they are processed (a Beam pipeline), not by the launcher.

An adapter that can do it defines ``event_lines(path, **options) -> EventLines``: the events
file, read line by line, a function that parses a chunk of its lines into canonical events
(the adapter's own parsing and validation, applied to the chunk), and the small tables the
launcher still loads (items, and the notes, protocol and parameters of the dataset). What
:func:`recsys.data.assemble.build_dataset` does over the whole frame is split here into what
one user's events need (:func:`user_events`: duplicates dropped, canonical order) and what the
load report sums over users (:class:`UserSummary`, :func:`load_report`), so that a Beam
pipeline (``transform/event_source.py``) gives the same events per user, in the same order,
as ``load_dataset`` and the same ``LoadReport``.

A generator defines ``event_shards(path, **options) -> EventShards`` instead: the shards (small
specifications of disjoint ranges of users), a function that makes one shard's canonical events,
and the same small tables. A pipeline makes the shards where they are processed
(``transform/event_source.py``); :func:`shard_frames` makes them one at a time for what the
launcher still checks (:func:`check_trainable_by_shard`, :func:`first_users`), never all at once.

Pandas/numpy only, as the rest of ``recsys.data``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from recsys.data.contract import (
    EVENT_TYPES,
    LEAVE_LAST_ORDER_OUT,
    MISSING_CREATED_AT,
    MIN_UNITS_PER_EVALUABLE_USER,
    LoadReport,
    raise_if_untrainable,
    split_sizes,
)

N_EXAMPLES = 5

#: ``parse(header_line, lines) -> canonical events frame`` (``validate_events`` columns, one row per line)
ParseLines = Callable[[str, Sequence[str]], pd.DataFrame]
#: ``time_key(timestamps, lo, hi)``: the canonical sort key given the dataset's timestamp range
RangeTimeKey = Callable[[np.ndarray, float, float], np.ndarray]


@dataclass(frozen=True)
class EventLines:
    """A dataset whose events file is read line by line by the pipeline (see the module docstring)."""

    name: str
    protocol: str
    events_file: str          # a text file with one header line, then one event per line
    events_source: str        # the name errors and the report use for it
    parse: ParseLines
    items: pd.DataFrame       # canonical items (validate_items), loaded by the launcher
    items_source: str
    params: tuple[tuple[str, Any], ...]
    notes: tuple[str, ...] = ()
    strict: bool = False
    synthetic: bool = False
    #: None: events are ordered by timestamp; else by this key of the (kept) events' timestamp range
    time_key: RangeTimeKey | None = None


def adapter_event_lines(module, path: str | None, **options: Any) -> EventLines | None:
    """``module.event_lines(path, **options)``, or None when the adapter reads its events whole."""
    fn = getattr(module, "event_lines", None)
    return None if fn is None else fn(path, **options)


@dataclass(frozen=True)
class EventShards:
    """A dataset whose events are made shard by shard where they are processed (see the module docstring).

    ``events(shard)`` gives one shard's canonical events (``validate_events`` columns): whole users, each
    user's events in canonical order, items all in ``items``, no duplicate rows. The users of a shard sort
    (by id) after those of every shard before it, and an order's events are in one shard. So the shards'
    frames concatenated in order are ``load_dataset``'s events, and the load report sums over shards.
    ``events`` and ``shards`` are pickled into a pipeline: keep them small (no tables).
    """

    name: str
    protocol: str
    shards: tuple[Any, ...]
    events: Callable[[Any], pd.DataFrame]
    make_items: Callable[[], pd.DataFrame]  # canonical items (validate_items), made by the launcher when asked
    items_source: str
    params: tuple[tuple[str, Any], ...]
    notes: tuple[str, ...] = ()
    synthetic: bool = False

    @functools.cached_property
    def items(self) -> pd.DataFrame:
        """The items table, made on first use (the pre-flight check never needs it: 384 MB at 1M items)."""
        return self.make_items()


def adapter_event_shards(module, path: str | None, **options: Any) -> EventShards | None:
    """``module.event_shards(path, **options)``, or None when the adapter does not make its events in shards."""
    fn = getattr(module, "event_shards", None)
    return None if fn is None else fn(path, **options)


def shard_frames(source: EventShards, max_users: int = 0) -> Iterator[pd.DataFrame]:
    """Each shard's events in shard order, one shard in memory at a time; with ``max_users`` > 0 only the
    first ``max_users`` users by id (the shards that hold them, the last one cut), as the example generator
    slices.

    Raises:
      ValueError: a shard's users do not all sort after the previous shard's (the ``EventShards`` contract).
    """
    last_user = None
    seen = 0
    for shard in source.shards:
        frame = source.events(shard)
        if len(frame) == 0:
            continue
        if last_user is not None and not last_user < frame["user_id"].iat[0]:
            raise ValueError(f"{source.name}: shard {shard!r} starts with user {frame['user_id'].iat[0]!r}, "
                             f"not after the previous shard's last user {last_user!r}")
        last_user = frame["user_id"].iat[-1]
        if max_users > 0:
            users = pd.unique(frame["user_id"])
            if seen + len(users) >= max_users:
                yield frame[frame["user_id"].isin(set(users[:max_users - seen]))]
                return
            seen += len(users)
        yield frame


def first_users(source: EventShards, max_users: int) -> frozenset[str]:
    """The first ``max_users`` user ids (by id) of the shards, made one shard at a time."""
    return frozenset(u for frame in shard_frames(source, max_users) for u in pd.unique(frame["user_id"]))


def split_sizes_by_shard(source: EventShards, max_users: int = 0) -> tuple[int, int]:
    """``contract.split_sizes`` of the whole events (or of the first ``max_users`` users), summed over shards:
    both counts are sums over users, and a user is in one shard."""
    pairs = evaluable = 0
    for frame in shard_frames(source, max_users):
        p, e = split_sizes(frame, source.protocol)
        pairs, evaluable = pairs + p, evaluable + e
    return pairs, evaluable


def check_trainable_by_shard(source: EventShards, batch_size: int, max_users: int = 0) -> None:
    """``contract.check_trainable`` of the dataset (sliced to its first ``max_users`` users), shard by shard:
    the same verdict and message, without all events in memory at once."""
    pairs, evaluable = split_sizes_by_shard(source, max_users)
    raise_if_untrainable(source.name, source.protocol, pairs, evaluable, batch_size)


# --- one user's events -------------------------------------------------------------------------

#: an event as the pipeline carries it: (file offset, item_id, event_type, timestamp, order_id, session_id, dwell_ms)
Row = tuple


def _dedup_key(row: Row) -> tuple:
    dwell = row[6]
    return row[1:6] + (None if dwell is None or (isinstance(dwell, float) and math.isnan(dwell)) else dwell,)


def user_events(rows: Iterable[Row], time_key: Callable[[np.ndarray], np.ndarray] | None = None
                ) -> tuple[list[Row], list[Row]]:
    """(kept events in canonical order, dropped duplicates in file order) of one user's rows.

    The rules of ``build_dataset``: a row equal in every field to an earlier row of the file is
    dropped (NaN dwell times compare equal, as pandas' ``duplicated`` does); the rest is sorted
    stably by ``time_key(timestamp)`` (default: the timestamp), so ties keep file order.
    """
    seen: set = set()
    kept, duplicates = [], []
    for row in sorted(rows, key=lambda r: r[0]):
        key = _dedup_key(row)
        if key in seen:
            duplicates.append(row)
        else:
            seen.add(key)
            kept.append(row)
    if not kept:
        return kept, duplicates
    ts = np.array([r[3] for r in kept], dtype=np.int64)
    key = ts if time_key is None else np.asarray(time_key(ts))
    order = np.argsort(key, kind="stable")
    return [kept[i] for i in order.tolist()], duplicates


# --- the load report, summed over users ----------------------------------------------------------


@dataclass
class UserSummary:
    """What the load report needs of one user's kept events (summed by :func:`merge_summaries`)."""

    n_users: int = 0
    n_events: int = 0
    event_types: dict = field(default_factory=dict)
    n_duplicates: int = 0
    duplicate_examples: list = field(default_factory=list)  # (offset, text), the first N_EXAMPLES in file order
    n_training_pairs: int = 0
    n_users_evaluable: int = 0
    any_order: bool = False
    any_session: bool = False
    any_dwell: bool = False


def summarise_user(user_id: str, kept: Sequence[Row], duplicates: Sequence[Row], protocol: str) -> UserSummary:
    from recsys.features import INTERACTION_TYPES

    types: dict[str, int] = {}
    for r in kept:
        types[r[2]] = types.get(r[2], 0) + 1
    acts = [r for r in kept if r[2] in INTERACTION_TYPES]
    if protocol == LEAVE_LAST_ORDER_OUT:
        units = len({r[4] for r in acts if r[4]}) + sum(1 for r in acts if not r[4])
    else:
        units = len(acts)
    evaluable = units >= MIN_UNITS_PER_EVALUABLE_USER
    examples = [(r[0], f"byte {r[0]} of the file: user {user_id}, item {r[1]}, {r[2]} at {r[3]}")
                for r in duplicates[:N_EXAMPLES]]
    return UserSummary(
        n_users=1, n_events=len(kept), event_types=types, n_duplicates=len(duplicates),
        duplicate_examples=examples, n_training_pairs=(units - 3) if evaluable else max(units - 1, 0),
        n_users_evaluable=int(evaluable), any_order=any(r[4] for r in kept),
        any_session=any(r[5] for r in kept), any_dwell=any(_dedup_key(r)[-1] is not None for r in kept))


def merge_summaries(parts: Iterable[UserSummary]) -> UserSummary:
    out = UserSummary()
    for p in parts:
        out.n_users += p.n_users
        out.n_events += p.n_events
        for t, c in p.event_types.items():
            out.event_types[t] = out.event_types.get(t, 0) + c
        out.n_duplicates += p.n_duplicates
        out.duplicate_examples = sorted(out.duplicate_examples + p.duplicate_examples)[:N_EXAMPLES]
        out.n_training_pairs += p.n_training_pairs
        out.n_users_evaluable += p.n_users_evaluable
        out.any_order |= p.any_order
        out.any_session |= p.any_session
        out.any_dwell |= p.any_dwell
    return out


@dataclass(frozen=True)
class ItemsSummary:
    """What the load report needs of the items table (small, where the table is large)."""

    n_items: int
    n_with_category: int
    n_with_text: int
    empty_fields: tuple[str, ...]  # "items.title", ... : empty in every row


def summarise_items(items: pd.DataFrame) -> ItemsSummary:
    empty_checks = {
        "items.title": bool((items["title"] == "").all()),
        "items.description": bool((items["description"] == "").all()),
        "items.category": bool((items["category"] == "").all()),
        "items.brand": bool((items["brand"] == "").all()),
        "items.price": bool(items["price"].isna().all()),
        "items.created_at": bool((items["created_at"] == MISSING_CREATED_AT).all()),
    }
    return ItemsSummary(
        n_items=len(items), n_with_category=int((items["category"] != "").sum()),
        n_with_text=int(((items["title"] != "") | (items["description"] != "")).sum()),
        empty_fields=tuple(name for name, empty in empty_checks.items() if empty))


def load_report(source: EventLines, summary: UserSummary, n_items_with_events: int, n_orders: int,
                n_unknown_item: int, unknown_item_examples: Sequence[str]) -> LoadReport:
    """The ``LoadReport`` ``build_dataset`` writes, from the per-user sums and the distinct counts."""
    return report_from_sums(summarise_items(source.items), source.notes, summary, n_items_with_events, n_orders,
                            n_unknown_item, unknown_item_examples)


def report_from_sums(items: ItemsSummary, notes: Sequence[str], summary: UserSummary, n_items_with_events: int,
                     n_orders: int, n_unknown_item: int, unknown_item_examples: Sequence[str]) -> LoadReport:
    """:func:`load_report` from the items' summary (what a pipeline passes instead of the items table)."""
    empty_events = {
        "events.order_id": not summary.any_order,
        "events.session_id": not summary.any_session,
        "events.dwell_ms": not summary.any_dwell,
    }
    return LoadReport(
        n_events=summary.n_events,
        n_users=summary.n_users,
        n_items=items.n_items,
        n_items_with_events=n_items_with_events,
        n_orders=n_orders,
        event_type_counts=tuple((t, summary.event_types[t]) for t in EVENT_TYPES if summary.event_types.get(t)),
        n_items_with_category=items.n_with_category,
        n_items_with_text=items.n_with_text,
        n_events_unknown_item=n_unknown_item,
        unknown_item_examples=tuple(unknown_item_examples),
        n_events_unknown_user=None,
        unused_optional_fields=tuple(name for name, empty in empty_events.items() if empty) + items.empty_fields,
        notes=tuple(notes),
        n_duplicate_events=summary.n_duplicates,
        duplicate_examples=tuple(text for _, text in summary.duplicate_examples),
        n_training_pairs=summary.n_training_pairs,
        n_users_evaluable=summary.n_users_evaluable,
    )


# --- the load report of shards ---------------------------------------------------------------------


def shard_user_rows(frame: pd.DataFrame) -> list[tuple[str, list[Row]]]:
    """``(user_id, rows)`` per user of a shard's canonical events, in the frame's order; a row's offset is its
    position in the frame."""
    if len(frame) == 0:
        return []
    users = frame["user_id"].to_numpy(dtype=object)
    rows = list(zip(range(len(frame)), frame["item_id"].tolist(), frame["event_type"].tolist(),
                    frame["timestamp"].tolist(), frame["order_id"].tolist(), frame["session_id"].tolist(),
                    frame["dwell_ms"].tolist()))
    starts = np.concatenate([[0], np.flatnonzero(users[1:] != users[:-1]) + 1, [len(frame)]]).tolist()
    return [(users[lo], rows[lo:hi]) for lo, hi in zip(starts[:-1], starts[1:])]


@dataclass
class ShardSummary:
    """What the load report needs of one or more shards (summed by :func:`merge_shard_summaries`)."""

    users: UserSummary = field(default_factory=UserSummary)
    items: set = field(default_factory=set)  # item ids with events
    n_orders: int = 0  # distinct non-empty order ids (an order is in one shard: they add up)


def summarise_shard(frame: pd.DataFrame, user_rows: Sequence[tuple[str, Sequence[Row]]],
                    protocol: str) -> ShardSummary:
    """A shard's summary from its canonical frame and :func:`shard_user_rows` of it (no duplicates by the
    ``EventShards`` contract)."""
    orders = frame["order_id"]
    return ShardSummary(
        users=merge_summaries(summarise_user(u, rows, (), protocol) for u, rows in user_rows),
        items=set(pd.unique(frame["item_id"])), n_orders=int(orders[orders != ""].nunique()))


def merge_shard_summaries(parts: Iterable[ShardSummary]) -> ShardSummary:
    out = ShardSummary()
    users = [out.users]
    for p in parts:
        users.append(p.users)
        out.items |= p.items
        out.n_orders += p.n_orders
    out.users = merge_summaries(users)
    return out


def shard_report(items: ItemsSummary, notes: Sequence[str], summary: ShardSummary) -> LoadReport:
    """The ``LoadReport`` of every shard (``summary``: all of them merged)."""
    return report_from_sums(items, notes, summary.users, len(summary.items), summary.n_orders, 0, ())
