"""The ranking window: each user's last training units, held out from the candidate retrievers.

A ranker learns from the candidates retrievers produce. If those retrievers were
trained on the very unit whose candidates they produce, every positive would be
a memorised training target and the ranker would learn to trust retrieval
scores far more than it may at serving time. So the ranker's training units are
a **ranking window**: each user's last ``window`` training units. A second copy
of the candidate retrievers is trained on the **prefix** (every training unit
before the window) and produces the window's candidates; the served retrievers
(trained on every training unit) produce the validation and test candidates,
exactly as at serving time.

The RankingWindow component writes an Examples artifact with the original
layout plus one split: ``train`` = the prefix rows (what the prefix retrievers
train on), ``window`` = the window rows (the ranker's training units), and
``eval``/``test``/``catalog`` copied unchanged. A user with a single training
unit keeps it in the prefix (nothing before it would train a retriever).
"""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam

from recsys import features as F

WINDOW = "window"  # split of the ranker's training units
DEFAULT_WINDOW = 5


def split_window(rows: Iterable[tuple[tuple, bytes]], window: int) -> tuple[list[bytes], list[bytes]]:
    """(prefix rows, window rows) of one user's training rows given as ``(time key, row)``.

    The window is the last ``min(window, len(rows) - 1)`` units by time key; at least
    one unit always stays in the prefix.
    """
    if window < 1:
        raise ValueError(f"the ranking window must hold at least one unit, got {window}")
    ordered = [r for _, r in sorted(rows, key=lambda pr: pr[0])]
    cut = max(1, len(ordered) - window)
    return ordered[:cut], ordered[cut:]


def _key(serialized: bytes) -> tuple[str, tuple[tuple, bytes]]:
    """(user, ((order position, timestamp, history length), row)): the unit's place in the user's time.

    Several units share an order position on MovieLens (one order per day), so the
    timestamp and then the history length (exact while histories are shorter than the
    cut) order them; units equal in all three are simultaneous events.
    """
    import tensorflow as tf

    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    when = (int(f[F.TARGET_ORDER_POS.name].int64_list.value[0]), int(f[F.TARGET_TIMESTAMP.name].int64_list.value[0]),
            len(f[F.HISTORY_ITEM_ID.name].bytes_list.value))
    return f[F.USER_ID.name].bytes_list.value[0].decode("utf-8"), (when, serialized)


class _Split(beam.DoFn):
    def __init__(self, window: int):
        self._window = window

    def process(self, element):
        _, rows = element
        prefix, held = split_window(rows, self._window)
        for r in prefix:
            yield beam.pvalue.TaggedOutput(F.TRAIN, r)
        for r in held:
            yield beam.pvalue.TaggedOutput(WINDOW, r)


@beam.ptransform_fn
def SplitRankingWindow(train_rows, window: int = DEFAULT_WINDOW):  # noqa: N802
    """Serialized training rows → ``{"train": prefix rows, "window": window rows}``."""
    tagged = (train_rows
              | "KeyByUser" >> beam.Map(_key)
              | "GroupByUser" >> beam.GroupByKey()
              | "Split" >> beam.ParDo(_Split(window)).with_outputs(F.TRAIN, WINDOW))
    return {F.TRAIN: tagged[F.TRAIN], WINDOW: tagged[WINDOW]}
