"""The item table the multi-stage client reads from a local file: popularity and categories.

``items.tsv``: a header ``item_id<TAB>interactions<TAB>category`` then one row per catalogue item,
most-interacted first. ``interactions`` counts the item's training-split interactions (the
example generator's ``train`` split: each user's first unit and every training target), so the
popularity source and the novelty rule see exactly what the models were trained on, never
validation or test. The full stack writes it once per pipeline run from the pipeline's examples
(``python -m serving.items <examples dir> <items.tsv>``, :func:`serving.items.write_item_table`,
which needs TensorFlow); this module reads it (:meth:`ItemTable.read`) and writes it from plain
counts (:func:`write_table`) with the standard library only. The popularity source is this file's
order: it keeps answering when every model is down.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping

HEADER = ("item_id", "interactions", "category")


@dataclass(frozen=True)
class ItemTable:
    item_ids: tuple          # most interacted first (ties: item id order)
    interactions: dict       # item -> count
    categories: dict         # item -> category ("" = none)

    @classmethod
    def read(cls, path: str) -> "ItemTable":
        if not os.path.exists(path):
            raise FileNotFoundError(f"no item table at {path}; write one with `python -m serving.items "
                                    f"<pipeline examples dir> {path}` (the full stack) or write_table()")
        ids, counts, cats = [], {}, {}
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            if tuple(header) != HEADER:
                raise ValueError(f"{path}: the header must be {'<TAB>'.join(HEADER)}, got {header}")
            for number, line in enumerate(f, 2):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
                    raise ValueError(f"{path}:{number}: expected item_id<TAB>count<TAB>category, got {line!r}")
                ids.append(parts[0])
                counts[parts[0]] = int(parts[1])
                if parts[2]:
                    cats[parts[0]] = parts[2]
        return cls(tuple(sorted(ids, key=lambda i: (-counts[i], i))), counts, cats)

    def popular(self, n: int, skip: frozenset | set = frozenset()) -> list[tuple[str, int]]:
        out = []
        for item in self.item_ids:
            if len(out) >= n:
                break
            if item not in skip:
                out.append((item, self.interactions[item]))
        return out


def write_table(path: str, counts: Mapping[str, int], categories: Mapping[str, str] | None = None,
                item_ids: Iterable[str] = ()) -> ItemTable:
    """Writes ``items.tsv`` atomically (a temporary file, then a rename: never a half-written table).

    ``counts``: item -> training interactions; ``categories``: item -> category; ``item_ids``: further
    catalogue items (count 0 unless in ``counts``). Rows are most-interacted first, ties in item id order.
    """
    categories = dict(categories or {})
    counts = {str(i): int(c) for i, c in counts.items()}
    ids = sorted(set(counts) | {str(i) for i in item_ids} | set(map(str, categories)),
                 key=lambda i: (-counts.get(i, 0), i))
    cats = {str(i): str(c) for i, c in categories.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\t".join(HEADER) + "\n")
        for i in ids:
            f.write(f"{i}\t{counts.get(i, 0)}\t{cats.get(i, '').replace(chr(9), ' ')}\n")
    os.replace(tmp, path)
    return ItemTable.read(path)
