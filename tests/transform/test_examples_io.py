"""Reading artifacts back: the ContentEmbedder's rows as one [N, D] float32 block, sorted by item id."""
import os

import numpy as np
import pytest
import tensorflow as tf

from recsys import features as F
from transform import examples_io
from transform.sequences import to_example


def _write_content(root, rows, files=2):
    d = os.path.join(root, f"Split-{F.CATALOG}")
    os.makedirs(d)
    for f in range(files):
        with tf.io.TFRecordWriter(os.path.join(d, f"part-{f}.gz"), options="GZIP") as w:
            for item, cat, vec in rows[f::files]:
                row = {F.ITEM_ID.name: item, F.CATEGORY.name: cat, F.EMBEDDING.name: [float(x) for x in vec]}
                w.write(to_example(row, F.CONTENT_FEATURES).SerializeToString())


def test_content_rows_are_one_block_sorted_by_item(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(9, 5)).astype(np.float32)
    ids = [f"i{k}" for k in (7, 2, 9, 0, 4, 1, 8, 3, 5)]
    _write_content(str(tmp_path), [(i, f"c{k % 3}", v) for k, (i, v) in enumerate(zip(ids, vecs))])
    out = examples_io.read_content(str(tmp_path))
    order = np.argsort(ids)
    assert out.item_ids.tolist() == sorted(ids)
    assert out.categories.tolist() == [f"c{k % 3}" for k in order]
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (9, 5)
    np.testing.assert_array_equal(out.vectors, vecs[order])


def test_content_rows_of_different_lengths_are_refused(tmp_path):
    _write_content(str(tmp_path), [("a", "c", [1.0, 2.0]), ("b", "c", [1.0, 2.0, 3.0])], files=1)
    with pytest.raises(ValueError, match="different lengths"):
        examples_io.read_content(str(tmp_path))
