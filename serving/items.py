"""The item table the multi-stage client reads from a local file: popularity and categories.

``items.tsv``: a header ``item_id<TAB>interactions<TAB>category`` then one row per catalogue item,
most-interacted first. ``interactions`` counts the item's training-split interactions (the
example generator's ``train`` split: each user's first unit and every training target,
``transform.examples_io.training_interactions``), so the popularity source and the novelty rule
see exactly what the models were trained on, never validation or test. Written once per
pipeline run by :func:`write_item_table` (``python -m serving.items <examples dir> <items.tsv>``),
read without TensorFlow by :meth:`ItemTable.read`. The popularity source is this file's order:
it keeps answering when every model is down.
"""
from __future__ import annotations

import collections
import os
import sys
from dataclasses import dataclass

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
                                    f"<pipeline examples dir> {path}`")
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


def write_item_table(examples_uri: str, path: str) -> ItemTable:
    """Counts training interactions per catalogue item from the pipeline's examples artifact."""
    from transform import examples_io

    catalog = examples_io.read_catalog(examples_uri)
    counts = collections.Counter(examples_io.training_item_counts(examples_uri))
    ids = sorted({str(i) for i in catalog.item_ids.tolist()} | set(counts), key=lambda i: (-counts[i], i))
    cats = {str(i): str(c) for i, c in zip(catalog.item_ids.tolist(), catalog.categories.tolist())}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\t".join(HEADER) + "\n")
        for i in ids:
            f.write(f"{i}\t{counts[i]}\t{cats.get(i, '').replace(chr(9), ' ')}\n")
    os.replace(tmp, path)  # never a half-written table
    return ItemTable.read(path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m serving.items <pipeline examples dir> <items.tsv>")
    table = write_item_table(sys.argv[1], sys.argv[2])
    print(f"{len(table.item_ids)} items, {sum(table.interactions.values())} training interactions -> {sys.argv[2]}")
