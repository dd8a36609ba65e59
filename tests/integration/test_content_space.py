"""Content space on the real MovieLens slice: text embeddings, RQ-VAE Semantic IDs, the item encoder."""
import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.integration



def test_every_catalogue_item_is_embedded_from_its_text(ml_slice):
    from transform import examples_io

    uri = ml_slice.uri("ContentEmbedder", "embeddings")
    report = json.load(open(os.path.join(uri, "content_report.json")))
    assert report["source"] == "text" and report["items"] == 1682
    rows = examples_io.read_content(uri)
    assert rows.vectors.shape == (1682, 512)
    np.testing.assert_allclose(np.linalg.norm(rows.vectors, axis=1), 1.0, rtol=1e-4)


def test_semantic_ids_are_unique_and_follow_the_taxonomy(ml_slice):
    report = ml_slice.read_json("SemanticIdTrainer", "model_run", "semantic_id_report.json")
    assert report["collision_rate_disambiguated"] == 0.0
    assert report["category_purity"] > report["random_category_purity"]
    assert len(report["levels"]) == 3


def test_item_encoder_is_pushed_with_its_id_table(ml_slice):
    layout = ml_slice.layout  # the pipeline's own push: the item encoder has no gate
    from tfx_pipeline.artifacts import latest_version_dir
    from trainer.semantic_ids import SemanticIdTable

    version = latest_version_dir(os.path.join(layout.serving_dir, "item_encoder"))
    table = SemanticIdTable.load(os.path.join(version, "assets.extra", "semantic_ids.tsv"))
    assert len(table) == 1682
    assert len({table.id_of(i) for i in table.item_ids}) == 1682


def test_served_item_encoder_matches_in_process(ml_slice, fresh_process):
    """Korean and English items through the model server (REST and gRPC) == the SavedModel in-process."""
    layout = ml_slice.layout
    from serving.client import RecommenderClient
    from serving.server import ModelServer, model_server_config
    from tfx_pipeline.artifacts import latest_version_dir

    base = os.path.join(layout.serving_dir, "item_encoder")
    items = [{"title": "유기농 바나나 1kg", "category": "식품 > 과일"}, {"title": "Toy Story", "brand": "Pixar"}]
    version = latest_version_dir(base)
    want = fresh_process(f"""
        import tensorflow as tf, tensorflow_text
        m = tf.saved_model.load({version!r})
        out = m.signatures["encode_text"](title=tf.constant(["유기농 바나나 1kg", "Toy Story"]),
            description=tf.constant(["", ""]), category=tf.constant(["식품 > 과일", ""]),
            brand=tf.constant(["", "Pixar"]))
        known = m.signatures["lookup"](item_id=tf.constant(["1"]))["semantic_id"].numpy().tolist()
        result = {{"ids": out["semantic_id"].numpy().tolist(), "emb": out["embedding"].numpy().tolist(),
                   "known": known}}
    """)
    config = model_server_config({"item_encoder": base})
    with ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1") as server:
        for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
            client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, model_name="item_encoder", timeout=60)
            got = client.encode_items(items=items)
            assert [list(g.semantic_id) for g in got] == want["ids"]
            np.testing.assert_allclose([g.embedding for g in got], want["emb"], rtol=1e-5, atol=1e-6)
            assert [list(g.semantic_id) for g in client.encode_items(item_ids=["1"])] == want["known"]
