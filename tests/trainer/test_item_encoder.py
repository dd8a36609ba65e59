"""The item_encoder module on a hand-made quantiser: disambiguation of new items, lookup, round trip."""
import numpy as np
import tensorflow as tf

from trainer.item_encoder import ItemEncoderModule, tuple_keys
from trainer.text_encoder import item_text_tensor

# catalogue: a and b collide on (1, 0) and got disambiguation codes 0 and 1; c is alone on (0, 1)
ITEMS = np.array(["a", "b", "c"], dtype=object)
IDS = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]], dtype=np.int32)


def codes_fn(embedding):
    """A 2-level 'quantiser': code l = 1 if coordinate l is positive."""
    return tf.cast(embedding[:, :2] > 0, tf.int32)


class LengthEncoder(tf.Module):
    """Stands in for the text encoder: [len(text), -len(text)]."""

    def __call__(self, text):
        n = tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.float32)
        return tf.stack([n, -n], axis=1)


def test_tuple_keys():
    assert tuple_keys(tf.constant([[12, 0, 255]])).numpy().tolist() == [b"12-0-255"]


def test_new_items_take_the_next_free_disambiguation_code():
    m = ItemEncoderModule(codes_fn, 2, ITEMS, IDS)
    out = m.encode_embedding(embedding=tf.constant([[1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]))
    # (1,0) is held by two items -> 2 ; (0,1) by one -> 1 ; (0,0) by none -> 0
    assert out["semantic_id"].numpy().tolist() == [[1, 0, 2], [0, 1, 1], [0, 0, 0]]


def test_lookup_returns_the_pipeline_ids_and_minus_one_for_unknown():
    m = ItemEncoderModule(codes_fn, 2, ITEMS, IDS)
    out = m.lookup(item_id=tf.constant(["b", "zz"]))["semantic_id"].numpy().tolist()
    assert out == [[1, 0, 1], [-1, -1, -1]]


def test_text_signature_joins_fields_like_the_pipeline_and_round_trips(tmp_path, fresh_process):
    m = ItemEncoderModule(codes_fn, 2, ITEMS, IDS, text_encoder=LengthEncoder(), text_fn=item_text_tensor)
    args = dict(title=tf.constant(["바나나", ""]), description=tf.constant(["", ""]),
                category=tf.constant(["식품 > 과일", ""]), brand=tf.constant(["", ""]))
    out = m.encode_text(**args)
    # "바나나 | 식품 > 과일" has 13 characters -> [13, -13] -> codes (1, 0) -> 2 items there already
    np.testing.assert_allclose(out["embedding"].numpy(), [[13, -13], [0, 0]])
    assert out["semantic_id"].numpy().tolist() == [[1, 0, 2], [0, 0, 0]]
    path = str(tmp_path / "enc")
    tf.saved_model.save(m, path, signatures=m.signatures())
    got = fresh_process(f"""
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        out = m.signatures["encode_text"](title=tf.constant(["바나나", ""]), description=tf.constant(["", ""]),
                                          category=tf.constant(["식품 > 과일", ""]), brand=tf.constant(["", ""]))
        result = {{"sigs": sorted(m.signatures.keys()), "ids": out["semantic_id"].numpy().tolist(),
                   "inputs": sorted(m.signatures["encode_text"].structured_input_signature[1])}}
    """)
    assert got["sigs"] == ["encode_embedding", "encode_text", "lookup", "serving_default"]
    assert got["inputs"] == ["brand", "category", "description", "title"]
    assert got["ids"] == [[1, 0, 2], [0, 0, 0]]


def test_an_encoder_without_text_saves_and_has_no_text_signature(tmp_path):
    m = ItemEncoderModule(codes_fn, 2, ITEMS, IDS)
    path = str(tmp_path / "enc")
    tf.saved_model.save(m, path, signatures=m.signatures())
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures.keys()) == ["encode_embedding", "lookup", "serving_default"]
    out = loaded.signatures["serving_default"](embedding=tf.constant([[1.0, -1.0]]))
    assert out["semantic_id"].numpy().tolist() == [[1, 0, 2]]
