"""Serving-side input conversion of the dual-head models (raw request tensors → model inputs)."""
import numpy as np
import tensorflow as tf

from trainer import dual_head as D
from export.dual_head import HistoryInput, StoredHistories


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
# (users, histories, order positions, behaviours): all purchases, the behaviour a request without one gets,
# so a stored user answers what the same history sent as a request answers
USERS = (["u1", "u2"], [["i1", "i2", "i3"], ["i4"]], [[0, 0, 1], [3]], [["purchase"] * 3, ["purchase"]])
MIXED_USERS = USERS[:3] + ([["click", "purchase", "click"], ["purchase"]],)  # u1 also clicked
REQUESTS = {  # signature -> request (one row asks what u1's stored history asks)
    "serving_default": {"history": [["i1", "i2", "i5"], ["i7", "", ""]], "k": [5, 5], "exclude": [["i2"], [""]]},
    "recommend_orders": {"history": [["i1", "i2", "i3"], ["i7", "i8", ""]], "order_pos": [[0, 0, 1], [0, 1, 0]],
                         "k": [4, 4], "exclude": [[""], ["i8"]]},
    "recommend_user": {"user_id": ["u1", "nobody"], "k": [4, 4], "exclude": [[""], ["i8"]]},
}
DTYPES = {"k": tf.int32, "order_pos": tf.int64}


def _random_items(n=12, random_codes=False):
    """n items with random content vectors (seed 0), 3 categories; codes random (disambiguated) or all zero."""
    from trainer.semantic_ids import disambiguate

    rng = np.random.default_rng(0)
    codes = disambiguate(rng.integers(0, 3, (n, 2))).astype(np.int32) if random_codes else np.zeros((n, 2), np.int32)
    return D.ItemSpace(np.array([f"i{j}" for j in range(n)], dtype=object), codes,
                       rng.normal(size=(n, 8)).astype(np.float32), (np.arange(n) % 3).astype(np.int32),
                       np.full(n, 5.0, np.float32))


def _small_dual_head():
    """A small dual-head model (seed 0) over 12 items with Semantic IDs, and its request input (purchase default)."""
    items = _random_items(random_codes=True)
    tf.keras.utils.set_random_seed(0)
    model = D.DualHeadModel(items, D.DualHeadConfig(**SMALL))
    model.build_variables()
    return model, items, HistoryInput(items, SMALL["max_history"], 64, order_positions=True, default_event="purchase")


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

    model, items, inputs = _small_dual_head()
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


# --- sequential_retrieval: the SASRec-style variant through the same retrieval module ------------------

SASREC_SMALL = dict(SMALL, variant="sasrec", generative_weight=0.0, distill_weight=0.0, id_residual=False,
                    order_positions=False, decoder_layers=0)


def _sasrec_module(index="brute_force", model_name="sequential_retrieval"):
    from export.dual_head import DualRetrievalModule

    items = _random_items()
    tf.keras.utils.set_random_seed(0)
    model = D.DualHeadModel(items, D.DualHeadConfig(**SASREC_SMALL))
    model.build_variables()
    inputs = HistoryInput(items, SASREC_SMALL["max_history"], 64, order_positions=False, default_event="purchase")
    emb = D.catalogue_vectors(model)
    module = DualRetrievalModule(model, inputs, items, emb, *USERS, model_name=model_name, index=index, max_k=10,
                                 max_exclude=5)
    return module, model, items, inputs


def test_sequential_retrieval_has_the_two_towers_signatures_and_scores_like_the_trained_model():
    from recsys import names as N

    module, model, items, inputs = _sasrec_module()
    sigs = module.signatures()
    assert sorted(sigs) == sorted(N.SIGNATURES[N.SEQUENTIAL_RETRIEVAL]) == sorted(N.SIGNATURES[N.RETRIEVAL])
    history = tf.constant([["i1", "i2", "i5"], ["i7", "", ""]])
    out = sigs[N.SERVING_DEFAULT](history=history, k=tf.constant([4, 4]), exclude=tf.constant([["i2"], [""]]))
    ids, scores = out[N.ITEM_IDS].numpy().astype(str), out[N.SCORES].numpy()
    # the training-time score: the encoder's user vector · the item's free ID embedding (raw dot product)
    h, rel, ev = inputs(history)
    user = model.user_vector(*model.encode(h, rel, ev)).numpy()
    exact = user @ D.catalogue_vectors(model).T
    exact[0, items.positions()["i2"]] = -np.inf
    want = np.argsort(-exact, axis=1)[:, :4]
    assert ids.tolist() == items.item_ids[want].astype(str).tolist()
    np.testing.assert_allclose(scores, np.take_along_axis(exact, want, axis=1), rtol=1e-5, atol=1e-6)
    # positions count items: order positions would change nothing (and there is no signature to send them)
    assert N.RECOMMEND_ORDERS not in sigs and N.EMBED_CONTENT not in sigs
    # a stored user answers what its stored history answers, through recommend_user and user_vector
    by_user = sigs[N.RECOMMEND_USER](user_id=tf.constant(["u1"]), k=tf.constant([4]), exclude=tf.constant([[""]]))
    by_history = sigs[N.SERVING_DEFAULT](history=tf.constant([USERS[1][0]]), k=tf.constant([4]),
                                         exclude=tf.constant([[""]]))
    assert by_user[N.ITEM_IDS].numpy().tolist() == by_history[N.ITEM_IDS].numpy().tolist()
    np.testing.assert_allclose(sigs[N.USER_VECTOR](user_id=tf.constant(["u1"]))[N.EMBEDDING].numpy(),
                               sigs[N.USER_EMBEDDING](history=tf.constant([USERS[1][0]]))[N.EMBEDDING].numpy(),
                               rtol=1e-6)


def test_sequential_retrieval_saves_and_answers_the_same_in_a_fresh_process(tmp_path, fresh_process):
    """Saving traces every function the module holds: the sasrec block's missing content path must not be one."""
    from export.twins import save
    from recsys import names as N

    module, _, _, _ = _sasrec_module()
    here = _answers(lambda name, t: module.signatures()[name if name != "recommend_orders" else N.SERVING_DEFAULT](
        **{k: v for k, v in t.items() if k != "order_pos"}))
    path = str(tmp_path / "sequential_retrieval")
    save(module, path)
    there = fresh_process(f"""
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        result = {{"signatures": sorted(m.signatures), "answers": {{}}}}
        for name, request in {REQUESTS!r}.items():
            sig = m.signatures[name if name != "recommend_orders" else "serving_default"]
            t = {{k: tf.constant(v, {{"k": tf.int32}}.get(k, tf.string)) for k, v in request.items() if k != "order_pos"}}
            out = sig(**t)
            result["answers"][name] = [out["item_ids"].numpy().astype(str).tolist(), out["scores"].numpy().tolist()]
    """)
    assert there["signatures"] == sorted(N.SIGNATURES[N.SEQUENTIAL_RETRIEVAL])
    for name, (ids, scores) in here.items():
        assert there["answers"][name][0] == ids, name
        np.testing.assert_allclose(there["answers"][name][1], scores, rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_model_is_served_only_under_its_variants_name():
    import pytest

    with pytest.raises(ValueError, match="serves the 'dual_head' variant, but this model is 'sasrec'"):
        _sasrec_module(model_name="dual_retrieval")
    with pytest.raises(ValueError, match="served as one of"):
        _sasrec_module(model_name="retrieval")
    from export.dual_head import check_retriever_variant

    with pytest.raises(ValueError, match="serves the 'sasrec' variant, but this model is 'dual_head'"):
        check_retriever_variant("sequential_retrieval", "dual_head")


# --- stored users are encoded as training encoded them -------------------------------------------------

def _dual_module(index="brute_force"):
    from export.dual_head import DualRetrievalModule

    model, items, inputs = _small_dual_head()
    module = DualRetrievalModule(model, inputs, items, D.catalogue_vectors(model), *MIXED_USERS, index=index, max_k=10,
                                 max_exclude=5)
    return module, model, items


def _training_vector(model, items, history, order_pos, events):
    """The user vector training computes for ``history`` (``trainer.dual_head.data`` encoding): positions
    counted in orders back from the next order, behaviours as logged."""
    pos = items.positions()
    h = np.full((1, SMALL["max_history"]), items.pad, np.int32)
    rel = np.zeros_like(h)
    ev = np.zeros_like(h)
    n = len(history)
    h[0, :n] = [pos[i] for i in history]
    rel[0, :n] = D.relative_orders(np.asarray(order_pos), max(order_pos) + 1, 64)
    ev[0, :n] = [D.EVENT_TYPES.index(e) for e in events]
    return model.user_vector(*model.encode(tf.constant(h), tf.constant(rel), tf.constant(ev))).numpy()


def test_a_stored_users_vector_is_the_training_time_vector_of_their_history():
    from recsys import names as N

    module, model, items = _dual_module()
    sigs = module.signatures()
    users, histories, order_pos, events = MIXED_USERS
    for u, h, p, e in zip(users, histories, order_pos, events):
        want = _training_vector(model, items, h, p, e)
        got = sigs[N.USER_VECTOR](user_id=tf.constant([u]))[N.EMBEDDING].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=u)
        # recommend_user ranks by that vector
        out = sigs[N.RECOMMEND_USER](user_id=tf.constant([u]), k=tf.constant([4]), exclude=tf.constant([[""]]))
        exact = want @ D.catalogue_vectors(model).T
        top = np.argsort(-exact[0])[:4]
        assert out[N.ITEM_IDS].numpy().astype(str)[0].tolist() == items.item_ids[top].astype(str).tolist()
        np.testing.assert_allclose(out[N.SCORES].numpy()[0], exact[0, top], rtol=1e-5, atol=1e-6)
    # the behaviours matter: the same history sent as a request (no behaviours: the default, purchase)
    # is another vector for u1, whose history has clicks
    as_request = sigs[N.RECOMMEND_ORDERS](history=tf.constant([histories[0]]), order_pos=tf.constant([order_pos[0]],
                                          tf.int64), k=tf.constant([4]), exclude=tf.constant([[""]]))
    default = _training_vector(model, items, histories[0], order_pos[0], ["purchase"] * 3)
    exact = (default @ D.catalogue_vectors(model).T)[0]
    np.testing.assert_allclose(as_request[N.SCORES].numpy()[0], np.sort(exact)[::-1][:4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(default, _training_vector(model, items, histories[0], order_pos[0], events[0]))
    # an unknown user is the empty history
    np.testing.assert_allclose(sigs[N.USER_VECTOR](user_id=tf.constant(["nobody"]))[N.EMBEDDING].numpy(),
                               sigs[N.USER_EMBEDDING](history=tf.constant([[""]]))[N.EMBEDDING].numpy(), rtol=1e-6)


def test_the_generative_module_reads_stored_users_with_their_behaviours():
    from export.dual_head import GenerativeModule

    model, items, inputs = _small_dual_head()
    module = GenerativeModule(model, inputs, items, *MIXED_USERS, beam_width=SMALL["beam_width"])
    history, order_pos, events = (t.numpy() for t in module.stored(tf.constant(["u1", "u2", "nobody"])))
    assert history.astype(str).tolist() == [["i1", "i2", "i3"], ["i4", "", ""], ["", "", ""]]
    assert order_pos.tolist() == [[0, 0, 1], [3, 0, 0], [0, 0, 0]]
    assert events.astype(str).tolist() == [["click", "purchase", "click"], ["purchase", "", ""], ["", "", ""]]


def test_stored_histories_keep_the_latest_items_and_refuse_ragged_input():
    import pytest

    from export.dual_head import StoredHistories

    stored = StoredHistories(["a"], [["i1", "i2", "i3"]], [[0, 1, 1]], [["click", "cart", "purchase"]], max_history=2)
    ids, pos, ev = (t.numpy() for t in stored(tf.constant(["a"])))
    assert ids.astype(str).tolist() == [["i2", "i3"]] and pos.tolist() == [[1, 1]]
    assert ev.astype(str).tolist() == [["cart", "purchase"]]
    assert stored.strings.numpy().astype(str).tolist() == ["", "i2", "i3", "cart", "purchase"]
    assert stored.ids.dtype == stored.events.dtype == tf.int32
    assert stored.ids.numpy().tolist() == [[1, 2], [0, 0]] and stored.events.numpy().tolist() == [[3, 4], [0, 0]]
    unknown = [t.numpy() for t in stored(tf.constant(["b", "a"]))]
    assert unknown[0].astype(str).tolist() == [["", ""], ["i2", "i3"]] and unknown[2][0].tolist() == [b"", b""]
    with pytest.raises(ValueError, match="user 'a': 2 history items, 2 order positions, 1 behaviours"):
        StoredHistories(["a"], [["i1", "i2"]], [[0, 1]], [["click"]], max_history=2)
    with pytest.raises(ValueError, match="one each per user"):
        StoredHistories(["a", "b"], [["i1"]], [[0]], [["click"]], max_history=2)


def test_stored_histories_stay_out_of_the_saved_graph(pb_growth):
    class Lookup(tf.Module):  # the dual head's exporters read stored users through StoredHistories
        def __init__(self, n):
            super().__init__()
            self.stored = StoredHistories(pb_growth.users(n), [[f"item{j}" for j in range(30)]] * n,
                                          [list(range(30))] * n, [["purchase"] * 30] * n, 30)
            self.serve = tf.function(lambda user_id: dict(zip(("ids", "pos", "events"), self.stored(user_id))),
                                     input_signature=[tf.TensorSpec([None], tf.string)])

    def save(module, path):
        tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
        out = tf.saved_model.load(path).signatures["serving_default"](user_id=tf.constant(["user000007", "nobody"]))
        assert out["ids"].numpy()[0, -1] == b"item29" and out["ids"].numpy()[1, 0] == b""
    assert pb_growth(Lookup, save) < pb_growth.limit


def test_item_content_and_codes_stay_out_of_the_saved_graph(pb_growth):
    """An item adds its id to the served lookup tables, not its content vector (64 floats here, 213 on
    Instacart, 512 on MovieLens) nor its codes: the model's item tables are variables the modules track."""
    from export import twins
    from export.dual_head import DualRetrievalModule, GenerativeModule, save_generative

    def model_of(n):
        rng = np.random.default_rng(0)
        items = D.ItemSpace(np.array([f"item{j:06d}" for j in range(n)], dtype=object),
                            np.stack([np.arange(n) % 7, np.arange(n)], axis=1).astype(np.int32),
                            rng.normal(size=(n, 64)).astype(np.float32), (np.arange(n) % 3).astype(np.int32),
                            np.full(n, 5.0, np.float32))
        model = D.DualHeadModel(items, D.DualHeadConfig(**SMALL))
        model.build_variables()
        return model, items, HistoryInput(items, SMALL["max_history"], 64, order_positions=True, default_event="purchase")

    def retrieval(n):
        model, items, inputs = model_of(n)
        return DualRetrievalModule(model, inputs, items, D.catalogue_vectors(model), *USERS, index="brute_force",
                                   max_k=10, max_exclude=5)

    def generative(n):
        model, items, inputs = model_of(n)
        return GenerativeModule(model, inputs, items, *USERS, beam_width=SMALL["beam_width"])
    # per item, its id with its int64 position in each id table: the request input's and the catalogue's, and the
    # retriever's vocabulary; against 64 floats (256 bytes) of content and 2 codes per item in the former graphs
    assert pb_growth(retrieval, twins.save) < 4 * pb_growth.limit
    assert pb_growth(generative, save_generative) < 3 * pb_growth.limit


def test_saving_does_not_serialise_the_keras_model_with_its_item_space(tmp_path, monkeypatch):
    """tf_keras serialises a tracked Keras model's get_config when it is saved; the dual head's holds the whole
    item space (every item's content as Python floats: past 22 GB at 1M items). The modules track only the
    model's variables (export.dual_head.ModelWeights), and still answer after a reload."""
    from export import twins
    from export.dual_head import DualRetrievalModule, GenerativeModule, save_generative

    model, items, inputs = _small_dual_head()
    retrieval = DualRetrievalModule(model, inputs, items, D.catalogue_vectors(model), *USERS, index="brute_force",
                                    max_k=5, max_exclude=5)
    generative = GenerativeModule(model, inputs, items, *USERS, beam_width=SMALL["beam_width"])
    request = {"user_id": tf.constant(["u1"]), "k": tf.constant([3]), "exclude": tf.constant([[""]])}
    want = {name: m.recommend_user(**request) for name, m in (("r", retrieval), ("g", generative))}

    calls = []  # recorded, not raised: tf_keras would swallow an exception from get_config
    monkeypatch.setattr(D.DualHeadModel, "get_config", lambda self: calls.append(self) or {})
    twins.save(retrieval, str(tmp_path / "r"))
    save_generative(generative, str(tmp_path / "g"))
    assert calls == []
    for name in ("r", "g"):
        got = tf.saved_model.load(str(tmp_path / name)).signatures["recommend_user"](**request)
        assert got["item_ids"].numpy().tolist() == want[name]["item_ids"].numpy().tolist()
        np.testing.assert_allclose(got["scores"].numpy(), want[name]["scores"].numpy(), rtol=1e-5, atol=1e-6)
