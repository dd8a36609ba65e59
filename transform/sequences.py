"""Per-user chronological sequences and the time-based split, as Beam transforms.

A user's interactions are sorted by time and cut into *units*: one unit per
interaction for leave-one-out data (MovieLens), one unit per order for basket
data (Instacart). The last unit is the test target, the one before it the
validation target, every earlier unit (from the second on) a training target
whose history is everything before it. This is RecBole's leave-one-out
protocol and the leave-last-order-out protocol of basket recommendation.

Order positional encoding needs one position per *order*: items bought
together share it. Events without an order id are orders of their own.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import apache_beam as beam

from recsys import features as F

from recsys.names import LEAVE_LAST_ORDER_OUT, LEAVE_ONE_OUT, PROTOCOLS  # noqa: E402,F401

_log = logging.getLogger("recsys.transform")
_STRENGTH = {t: i for i, t in enumerate(F.INTERACTION_TYPES)}  # click < like < cart < purchase


@dataclass(frozen=True)
class Event:
    """One interaction of one user, as the sequence builder needs it.

    ``seq`` is the event's position in the dataset's canonical order (user, time,
    then row of the source file: ``recsys.data.assemble.canonical_sort``), or,
    when the events are read inside Beam (``transform/event_source.py``), its
    rank among its user's events in that order. It is the only sort key of a
    user's events: a Beam GroupByKey does not keep the order of values, so the
    order is carried explicitly, and ties in time keep file order exactly as
    RecBole's leave-one-out split does.
    """

    timestamp: int
    item_id: str
    event_type: str
    order_id: str
    seq: int


def order_positions(events: Sequence[Event]) -> list[int]:
    """Order position of each (time-sorted) event: one position per order.

    Events sharing a non-empty ``order_id`` share a position; an event without
    an order id is an order of its own. Positions count orders from 0 in the
    order of their first event.
    """
    positions: list[int] = []
    seen: dict[str, int] = {}
    next_pos = 0
    for e in events:
        if e.order_id and e.order_id in seen:
            positions.append(seen[e.order_id])
            continue
        if e.order_id:
            seen[e.order_id] = next_pos
        positions.append(next_pos)
        next_pos += 1
    return positions


def _units(positions: Sequence[int], protocol: str) -> list[list[int]]:
    """Event indices grouped into target units (interactions or orders), in time order."""
    if protocol == LEAVE_ONE_OUT:
        return [[i] for i in range(len(positions))]
    if protocol == LEAVE_LAST_ORDER_OUT:
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(positions):
            groups.setdefault(p, []).append(i)
        return [groups[p] for p in sorted(groups)]
    raise ValueError(f"Unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def build_user_rows(
    user_id: str,
    events: Iterable[Event],
    item_category: dict[str, str],
    protocol: str,
    max_history: int = F.DEFAULT_MAX_HISTORY,
) -> list[tuple[str, dict]]:
    """All sequence rows of one user as ``(split, features)`` pairs.

    Training rows keep the most recent ``max_history`` history items; validation
    and test rows keep the whole history so that evaluation can mask every item
    the user has already seen.
    """
    interactions = sorted((e for e in events if e.event_type in F.INTERACTION_TYPES), key=lambda e: e.seq)
    if not interactions:
        return []
    positions = order_positions(interactions)
    units = _units(positions, protocol)
    n = len(units)
    rows: list[tuple[str, dict]] = []
    for u, unit in enumerate(units):
        if u == 0:
            continue  # nothing before it to learn from
        if n >= 3 and u == n - 1:
            split = F.TEST
        elif n >= 3 and u == n - 2:
            split = F.EVAL
        else:
            split = F.TRAIN
        start = unit[0]
        lo = max(0, start - max_history) if split == F.TRAIN else 0
        history = interactions[lo:start]
        targets: list[str] = []
        behaviour: dict[str, str] = {}
        for i in unit:
            e = interactions[i]
            if e.item_id not in behaviour:
                targets.append(e.item_id)
                behaviour[e.item_id] = e.event_type
            elif _STRENGTH[e.event_type] > _STRENGTH[behaviour[e.item_id]]:
                behaviour[e.item_id] = e.event_type
        rows.append((split, {
            F.USER_ID.name: user_id,
            F.HISTORY_ITEM_ID.name: [e.item_id for e in history],
            F.HISTORY_ORDER_POS.name: positions[lo:start],
            F.HISTORY_EVENT_TYPE.name: [e.event_type for e in history],
            F.TARGET_ITEM_ID.name: targets,
            F.TARGET_CATEGORY.name: [item_category.get(t, "") for t in targets],
            F.TARGET_EVENT_TYPE.name: [behaviour[t] for t in targets],
            F.TARGET_ORDER_POS.name: positions[start],
            F.TARGET_TIMESTAMP.name: interactions[start].timestamp,
        }))
    return rows


def to_example(row: dict, features: Sequence[F.Feature]):
    """A feature dict as a ``tf.train.Example`` (features named by the registry)."""
    import tensorflow as tf

    feats = {}
    for f in features:
        value = row[f.name]
        values = value if f.varlen else [value]
        if f.dtype == "string":
            feats[f.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
        elif f.dtype == "int64":
            feats[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        else:
            feats[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    return tf.train.Example(features=tf.train.Features(feature=feats))


class _BuildRows(beam.DoFn):
    """(user_id, events) → serialized sequence rows tagged with their split."""

    def __init__(self, item_category: dict[str, str], protocol: str, max_history: int):
        self._item_category = item_category
        self._protocol = protocol
        self._max_history = max_history
        self._users = beam.metrics.Metrics.counter("recsys", "users")
        self._rows = {s: beam.metrics.Metrics.counter("recsys", f"rows_{s}") for s in F.SEQUENCE_SPLITS}

    def process(self, element) -> Iterator[beam.pvalue.TaggedOutput]:
        user_id, events = element
        self._users.inc()
        for split, row in build_user_rows(user_id, events, self._item_category, self._protocol, self._max_history):
            self._rows[split].inc()
            yield beam.pvalue.TaggedOutput(split, to_example(row, F.SEQUENCE_FEATURES).SerializeToString())


@beam.ptransform_fn
def BuildSequenceRows(events, item_category: dict[str, str], protocol: str, max_history: int,  # noqa: N802
                      grouped: bool = False):
    """PCollection of ``(user_id, Event)`` → dict of split → serialized tf.Examples.

    ``grouped``: the input is already ``(user_id, [Event, ...])`` (one element per user).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if not grouped:
        events = events | "GroupByUser" >> beam.GroupByKey()
    tagged = (
        events
        | "BuildRows" >> beam.ParDo(_BuildRows(item_category, protocol, max_history)).with_outputs(*F.SEQUENCE_SPLITS)
    )
    return {split: tagged[split] for split in F.SEQUENCE_SPLITS}


def catalog_row(item: dict) -> dict:
    """A catalog row from an item record of the data contract."""
    price = item.get("price")
    created = item.get("created_at")
    return {
        F.ITEM_ID.name: str(item["item_id"]),
        F.TITLE.name: str(item.get("title") or ""),
        F.DESCRIPTION.name: str(item.get("description") or ""),
        F.CATEGORY.name: str(item.get("category") or ""),
        F.BRAND.name: str(item.get("brand") or ""),
        F.PRICE.name: float("nan") if price is None else float(price),
        F.CREATED_AT.name: -1 if created is None else int(created),
    }
