"""Helpers for ragged per-row int arrays (``Sequence[np.ndarray]``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def flatten_rows(rows: Sequence[np.ndarray], num_items: int, what: str = "item") -> tuple[np.ndarray, np.ndarray]:
    """Flatten ``R`` ragged int arrays into COO pairs.

    Returns:
      ``(row_ids [N], item_ids [N])`` int64 with ``N = Σ len(rows[r])``, row-major and in
      the original within-row order.

    Raises:
      ValueError: if any item id is outside ``[0, num_items)`` (``what`` names the data).
    """
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    row_ids = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    if lengths.sum() == 0:
        return row_ids, np.zeros(0, dtype=np.int64)
    items = np.concatenate([np.asarray(r).ravel() for r in rows if len(r)])  # empty rows may be float
    if not np.issubdtype(items.dtype, np.integer):
        raise ValueError(f"{what} ids must be integers; got dtype {items.dtype}")
    items = items.astype(np.int64, copy=False)
    if items.min() < 0 or items.max() >= num_items:
        raise ValueError(f"{what} ids must lie in [0, {num_items}); got [{items.min()}, {items.max()}]")
    return row_ids, items
