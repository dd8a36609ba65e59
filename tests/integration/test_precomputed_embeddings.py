"""`--item-embeddings`: a user's own vectors replace the text encoder in the ContentEmbedder."""
import os

import numpy as np
import pytest
from tfx import v1 as tfx
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, with_setup_file

pytestmark = pytest.mark.integration


def _pipeline(root, vectors_path):
    from recsys.data import dataset_fingerprint
    from tfx_pipeline.components.content_embedder import ContentEmbedder
    from tfx_pipeline.components.example_gen import SequenceExampleGen

    gen = SequenceExampleGen(dataset="movielens-100k", fingerprint=dataset_fingerprint("movielens-100k"),
                             max_users=5)
    emb = ContentEmbedder(examples=gen.outputs["examples"], precomputed_path=vectors_path)
    return tfx.dsl.Pipeline(
        pipeline_name="precomputed", pipeline_root=os.path.join(root, "pipeline"), components=[gen, emb],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "mlmd.sqlite")),
        beam_pipeline_args=with_setup_file(DEFAULT_BEAM_ARGS))


def test_precomputed_vectors_are_used_as_given(tmp_path, latest):
    from transform import examples_io

    ids = np.array([str(i) for i in range(1, 1683)])
    vectors = np.random.default_rng(0).normal(size=(len(ids), 16)).astype(np.float32)
    path = str(tmp_path / "llm_vectors.npz")
    np.savez(path, item_id=ids[::-1], embedding=vectors[::-1])  # any order: matched by item id
    tfx.orchestration.LocalDagRunner().run(_pipeline(str(tmp_path), path))
    rows = examples_io.read_content(latest(str(tmp_path / "pipeline" / "ContentEmbedder" / "embeddings" / "*")))
    want = dict(zip(ids, vectors))
    np.testing.assert_array_equal(rows.vectors, np.stack([want[i] for i in rows.item_ids]))


def test_vectors_with_a_nan_stop_the_run_naming_the_row(tmp_path):
    ids = np.array([str(i) for i in range(1, 1683)])
    vectors = np.ones((len(ids), 4), np.float32)
    vectors[9, 2] = np.nan
    path = str(tmp_path / "bad.npz")
    np.savez(path, item_id=ids, embedding=vectors)
    with pytest.raises(Exception, match=r"row 10 \(item 10\).*NaN"):
        tfx.orchestration.LocalDagRunner().run(_pipeline(str(tmp_path), path))
