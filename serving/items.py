"""The item table from the pipeline's examples (the full stack's writer; needs TensorFlow).

The table itself (``items.tsv``, :class:`ItemTable`, :func:`write_table`) lives in the client
distribution (``commerce_recsys_client.items``), which reads it without TensorFlow; this module
re-exports it and adds :func:`write_item_table`, which counts each catalogue item's training-split
interactions (``transform.examples_io.training_item_counts``: each user's first unit and every
training target) from the pipeline's examples artifact. ``python -m serving.items <examples dir>
<items.tsv>`` writes the file a backend's Recommender reads.
"""
from __future__ import annotations

import sys

from commerce_recsys_client.items import HEADER, ItemTable, write_table

__all__ = ["HEADER", "ItemTable", "write_table", "write_item_table"]


def write_item_table(examples_uri: str, path: str) -> ItemTable:
    """Counts training interactions per catalogue item from the pipeline's examples artifact."""
    from transform import examples_io

    catalog = examples_io.read_catalog(examples_uri)
    counts = examples_io.training_item_counts(examples_uri)
    return write_table(path, counts, dict(zip(catalog.item_ids.tolist(), catalog.categories.tolist())),
                       item_ids=catalog.item_ids.tolist())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m serving.items <pipeline examples dir> <items.tsv>")
    table = write_item_table(sys.argv[1], sys.argv[2])
    print(f"{len(table.item_ids)} items, {sum(table.interactions.values())} training interactions -> {sys.argv[2]}")
