"""preprocessing_fn on a handful of rows with TF Transform's Beam implementation: exact outputs."""
import math
import os
import tempfile

import pytest

from recsys import features as F


def _rows():
    def row(user, hist, targets, cats):
        return {
            F.USER_ID.name: user, F.HISTORY_ITEM_ID.name: hist, F.HISTORY_ORDER_POS.name: list(range(len(hist))),
            F.HISTORY_EVENT_TYPE.name: ["purchase"] * len(hist), F.TARGET_ITEM_ID.name: targets,
            F.TARGET_CATEGORY.name: cats, F.TARGET_EVENT_TYPE.name: ["purchase"] * len(targets),
            F.TARGET_ORDER_POS.name: len(hist), F.TARGET_TIMESTAMP.name: 1,
        }
    # training targets: a ×3, b ×1 ; c only in a history
    return [row("u1", ["c"], ["a"], ["x"]), row("u1", ["c", "a"], ["a", "b"], ["x", "y"]), row("u2", [], ["a"], ["x"])]


@pytest.fixture(scope="module")
def transformed():
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from transform.preprocessing import preprocessing_fn

    schema = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(F.feature_spec(F.SEQUENCE_FEATURES)))
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp):
        (out, _), tf_out = ((_rows(), schema) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn, output_record_batches=False))
        tf_out | tft_beam.WriteTransformFn(os.path.join(tmp, "tft"))
        import tensorflow_transform as tft

        tfo = tft.TFTransformOutput(os.path.join(tmp, "tft"))
        vocab = [v.decode() for v in tfo.vocabulary_by_name(F.ITEM_VOCAB)]
        yield out, vocab


def test_item_vocabulary_counts_histories_and_targets_most_frequent_first(transformed):
    _, vocab = transformed
    assert vocab[0] == "a"  # a: 3 targets + 1 history; c: 2 histories; b: 1 target
    assert vocab == ["a", "c", "b"]


def test_popularity_and_sampling_weight_are_training_target_counts(transformed):
    out, vocab = transformed
    second = out[1]
    assert list(second[F.TARGET_POPULARITY]) == [3, 1]
    assert [round(float(w), 6) for w in second[F.TARGET_WEIGHT]] == [round(1 / math.sqrt(3), 6), 1.0]
    assert [vocab[i] for i in second[F.transformed_name(F.TARGET_ITEM_ID.name)]] == ["a", "b"]
    assert [vocab[i] for i in second[F.transformed_name(F.HISTORY_ITEM_ID.name)]] == ["c", "a"]
    assert list(second[F.transformed_name(F.HISTORY_ORDER_POS.name)]) == [0, 1]
