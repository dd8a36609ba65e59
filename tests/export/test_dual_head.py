"""Serving-side input conversion of the dual-head models (raw request tensors → model inputs)."""
import numpy as np
import tensorflow as tf

from trainer import dual_head as D
from export.dual_head import HistoryInput


def _items(n=5):
    return D.ItemSpace(np.array([f"i{j}" for j in range(n)], dtype=object), np.zeros((n, 2), np.int32),
                       np.ones((n, 3), np.float32), np.zeros(n, np.int32), np.ones(n, np.float32))


def test_history_input_keeps_the_latest_items_and_counts_orders_back():
    items = _items()
    inputs = HistoryInput(items, max_history=2, max_orders=8, order_positions=True, default_event="purchase")
    history = tf.constant([["i1", "i2", "i3", ""], ["zzz", "i0", "", ""], ["", "", "", ""]])
    order_pos = tf.constant([[0, 0, 2, 0], [5, 7, 0, 0], [0, 0, 0, 0]], tf.int64)
    idx, rel, ev = inputs(history, order_pos)
    assert idx.numpy().tolist() == [[2, 3], [items.oov, 0], [items.pad, items.pad]]
    assert rel.numpy().tolist() == [[3, 1], [3, 1], [0, 0]]
    purchase = D.EVENT_TYPES.index("purchase")
    assert ev.numpy().tolist() == [[purchase] * 2, [purchase] * 2, [0, 0]]


def test_history_input_without_positions_makes_every_item_its_own_order():
    inputs = HistoryInput(_items(), max_history=4, max_orders=3, order_positions=True, default_event="")
    idx, rel, _ = inputs(tf.constant([["i1", "i2", "i3"]]))
    assert idx.numpy().tolist() == [[1, 2, 3, 6]]
    assert rel.numpy().tolist() == [[2, 2, 1, 0]]  # 3 orders back is clipped to max_orders - 1


def test_sasrec_exports_ignore_order_positions():
    inputs = HistoryInput(_items(), max_history=3, max_orders=8, order_positions=False, default_event="")
    _, rel, _ = inputs(tf.constant([["i1", "i2", "i3"]]), tf.constant([[0, 0, 0]], tf.int64))
    assert rel.numpy().tolist() == [[3, 2, 1]]


# --- the generative SavedModel -------------------------------------------------------------------

SMALL = dict(d_model=16, num_heads=2, encoder_layers=1, decoder_layers=1, ff_dim=32, max_history=6,
             memory_tokens=2, beam_width=8, distill_candidates=5, dropout=0.0)
USERS = (["u1", "u2"], [["i1", "i2", "i3"], ["i4"]], [[0, 0, 1], [3]])
REQUESTS = {  # signature -> request (one row asks what u1's stored history asks)
    "serving_default": {"history": [["i1", "i2", "i5"], ["i7", "", ""]], "k": [5, 5], "exclude": [["i2"], [""]]},
    "recommend_orders": {"history": [["i1", "i2", "i3"], ["i7", "i8", ""]], "order_pos": [[0, 0, 1], [0, 1, 0]],
                         "k": [4, 4], "exclude": [[""], ["i8"]]},
    "recommend_user": {"user_id": ["u1", "nobody"], "k": [4, 4], "exclude": [[""], ["i8"]]},
}
DTYPES = {"k": tf.int32, "order_pos": tf.int64}


def _tensors(request: dict) -> dict:
    return {k: tf.constant(v, DTYPES.get(k, tf.string)) for k, v in request.items()}


def _answers(call) -> dict:
    """signature -> (item ids [B][K], scores [B][K]) of ``call(signature, tensors)``."""
    out = {}
    for name, request in REQUESTS.items():
        got = call(name, _tensors(request))
        out[name] = (got["item_ids"].numpy().astype(str).tolist(), got["scores"].numpy().tolist())
    return out


def test_generative_savedmodel_answers_the_same_items_and_scores_in_a_fresh_process(tmp_path, fresh_process):
    from export.dual_head import GenerativeModule, save_generative
    from trainer.semantic_ids import disambiguate

    n = 12
    rng = np.random.default_rng(0)
    items = D.ItemSpace(np.array([f"i{j}" for j in range(n)], dtype=object),
                        disambiguate(rng.integers(0, 3, (n, 2))).astype(np.int32),
                        rng.normal(size=(n, 8)).astype(np.float32), (np.arange(n) % 3).astype(np.int32),
                        np.full(n, 5.0, np.float32))
    tf.keras.utils.set_random_seed(0)
    model = D.DualHeadModel(items, D.DualHeadConfig(**SMALL))
    model.build_variables()
    inputs = HistoryInput(items, SMALL["max_history"], 64, order_positions=True, default_event="purchase")
    module = GenerativeModule(model, inputs, items, *USERS, beam_width=SMALL["beam_width"])
    here = _answers(lambda name, t: module.signatures()[name](**t))
    # in process: exclusions hold, a stored user answers like its history, scores are the teacher's likelihoods
    ids, scores = here["serving_default"]
    assert "i2" not in ids[0] and all(len(set(row)) == 5 and "" not in row for row in ids)
    assert here["recommend_user"][0][0] == here["recommend_orders"][0][0]
    np.testing.assert_allclose(here["recommend_user"][1][0], here["recommend_orders"][1][0], rtol=1e-6)
    h, rel, ev = inputs(tf.constant(REQUESTS["serving_default"]["history"]))
    memory = model.memory(*model.encode(h, rel, ev))
    pos = items.positions()
    exact = model.code_log_likelihood(memory, tf.constant([[pos[i] for i in row] for row in ids])).numpy()
    np.testing.assert_allclose(scores, exact, rtol=1e-4, atol=1e-5)

    path = str(tmp_path / "generative")
    save_generative(module, path)
    there = fresh_process(f"""
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        result = {{}}
        for name, request in {REQUESTS!r}.items():
            t = {{k: tf.constant(v, {{"k": tf.int32, "order_pos": tf.int64}}.get(k, tf.string)) for k, v in request.items()}}
            out = m.signatures[name](**t)
            result[name] = [out["item_ids"].numpy().astype(str).tolist(), out["scores"].numpy().tolist()]
    """)
    assert set(there) == set(REQUESTS)
    for name, (ids, scores) in here.items():
        assert there[name][0] == ids, name
        np.testing.assert_allclose(there[name][1], scores, rtol=1e-5, atol=1e-6, err_msg=name)
