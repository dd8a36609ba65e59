"""The ranker SavedModel: in-graph features equal the exposure builder's, round trip in a fresh process."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from export.ranker import RETRIEVAL_WIDTH, RankerModule, save
from recsys import names as N
from trainer.ranker.config import RankerConfig
from trainer.ranker.data import ItemTables
from trainer.ranker.model import Ranker
from trainer.ranker.persist import TrainedRanker, dummy_inputs
from transform import exposures as X

ITEMS = ["a", "b", "c", "d", "e"]
CATS = ["x", "y"]
ITEM_CAT = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "x"}
POP = {"a": 9, "b": 0, "c": 3, "d": 1, "e": 4}
CREATED = {"a": 0, "b": 86400 * 30, "c": -1, "d": 86400 * 300, "e": -86400 * 5}  # -1: unknown
DAY = 86400


def _trained(seed=0):
    config = RankerConfig(actions=3, last_tokens=2, transact_dim=8, id_dim=4, content_dim=4, category_dim=2,
                          user_dim=3, deep_units=(8,), seed=seed, transact=True)  # the full path
    tf.keras.utils.set_random_seed(seed)
    content = np.random.default_rng(seed).normal(size=(6, 5)).astype(np.float32)
    content[-1] = 0
    item_cat = np.array([CATS.index(ITEM_CAT[i]) for i in ITEMS] + [len(CATS)], np.int32)
    codes = np.array([[0, 1], [0, 2], [1, 1], [1, 0], [2, 2], [3, 3]], np.int32)
    created = np.array([CREATED[i] for i in ITEMS] + [-1], np.int64)
    model = Ranker(config, ItemTables(content, item_cat, len(CATS), codes, 3, created),
                   np.zeros(len(X.FEATURE_NAMES)), np.ones(len(X.FEATURE_NAMES)))
    model(dummy_inputs(5, len(X.FEATURE_NAMES), 3, 2))
    return TrainedRanker(model, config, np.array(ITEMS), np.array([POP[i] for i in ITEMS]), 0.5, {})


def _unit():
    hist = [X.Action(0, "a", "purchase"), X.Action(0, "c", "click"), X.Action(2, "a", "purchase"),
            X.Action(3, "b", "cart")]
    return X.Unit("u1", "eval", hist, ["d"], ["purchase"], order_pos=5, timestamp=0,
                  candidates={"graph": (["d", "a", "zz"], [0.9, 0.5, 0.1]), "popularity": (["a", "e"], [2.3, 1.6])})


def _request(unit, merged, feats):
    h = unit.history
    return {N.USER_ID: tf.constant([unit.user_id]), N.HISTORY: tf.constant([[a.item_id for a in h]]),
            N.HISTORY_TYPES: tf.constant([[a.behaviour for a in h]]),
            N.HISTORY_GAPS: tf.constant([[unit.order_pos - a.order_pos for a in h]], tf.int64),
            N.REQUEST_TIME: tf.constant([unit.timestamp], tf.int64),
            N.CANDIDATES: tf.constant([merged]),
            N.RETRIEVAL_FEATURES: tf.constant(feats[None, :, :RETRIEVAL_WIDTH])}


def test_in_graph_features_equal_the_exposure_builders():
    unit = _unit()
    merged = X.merge(unit.candidates)
    python = X.candidate_features(unit, merged, POP, ITEM_CAT)
    module = RankerModule(_trained(), ["u1"], np.ones((1, 2), np.float32), np.zeros(2, np.float32))
    req = _request(unit, merged, python)
    graph = module.features(req[N.HISTORY], req[N.HISTORY_GAPS], req[N.CANDIDATES], req[N.RETRIEVAL_FEATURES])
    np.testing.assert_allclose(graph.numpy()[0], python, rtol=1e-6, atol=1e-6)
    assert "zz" in merged  # an unknown candidate id is ranked, not an error


def test_recent_actions_are_right_aligned():
    module = RankerModule(_trained(), [], np.zeros((0, 2), np.float32), np.zeros(2, np.float32))
    items, types, gaps = module.recent_actions(tf.constant([["a", "b", "", ""], ["a", "b", "c", "d"]]),
                                               tf.constant([["click", "huh", "", ""], ["click"] * 4]),
                                               tf.constant([[3, 1, 0, 0], [4, 3, 2, 1]], tf.int64))
    assert items.numpy().tolist() == [[5, 0, 1], [1, 2, 3]]  # 5 = padding in front
    assert types.numpy().tolist() == [[0, 1, 1], [1, 1, 1]]  # unknown behaviour counts as click
    assert gaps.numpy().tolist() == [[0, 3, 1], [3, 2, 1]]


def test_round_trip_in_a_fresh_process(tmp_path):
    unit = _unit()
    merged = X.merge(unit.candidates) + [""]
    feats = np.concatenate([X.candidate_features(unit, merged[:-1], POP, ITEM_CAT),
                            np.zeros((1, len(X.FEATURE_NAMES)), np.float32)])
    module = RankerModule(_trained(), ["u1"], np.ones((1, 2), np.float32), np.zeros(2, np.float32))
    req = _request(unit, merged, feats)
    here = {k: v.numpy() for k, v in module.rank(**req).items()}
    assert np.isneginf(here[N.SCORE][0, -1])  # padding scores -inf
    np.testing.assert_allclose(here[N.PCTCVR], here[N.PCTR] * here[N.PCVR], rtol=1e-6)
    np.testing.assert_allclose(here[N.SCORE][0, :-1], (here[N.PCTR] * np.sqrt(here[N.PCVR]))[0, :-1], rtol=1e-5)
    save(module, str(tmp_path / "m"))
    inputs = {k: v.numpy().tolist() if v.dtype != tf.string else [[x.decode() for x in r] if isinstance(r, np.ndarray)
              else r.decode() for r in v.numpy()] for k, v in req.items()}
    script = f"""
import json, sys, numpy as np, tensorflow as tf
from recsys import names as N
m = tf.saved_model.load({str(tmp_path / 'm')!r})
sig = m.signatures[N.RANK]
specs = sig.structured_input_signature[1]
inputs = json.loads(sys.stdin.read())
out = sig(**{{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}})
print(json.dumps({{"outputs": sorted(out), "inputs": sorted(specs),
                   "score": out[N.SCORE].numpy()[0, :-1].tolist(), "default": sorted(m.signatures)}}))
"""
    res = subprocess.run([sys.executable, "-c", script], input=json.dumps(inputs), capture_output=True, text=True,
                         check=True, env={**__import__("os").environ, "TF_USE_LEGACY_KERAS": "1"})
    there = json.loads(res.stdout.strip().splitlines()[-1])
    inputs_c, outputs_c = N.SIGNATURES[N.RANKER][N.RANK]
    assert there["inputs"] == sorted(inputs_c) and there["outputs"] == sorted(outputs_c)
    assert there["default"] == sorted([N.RANK, N.SERVING_DEFAULT])
    np.testing.assert_allclose(there["score"], here[N.SCORE][0, :-1], rtol=1e-6)


def test_rank_rejects_mismatched_shapes():
    module = RankerModule(_trained(), [], np.zeros((0, 2), np.float32), np.zeros(2, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="history_types must match history"):
        module.rank(tf.constant(["u"]), tf.constant([["a", "b"]]), tf.constant([["click"]]),
                    tf.constant([[1, 1]], tf.int64), tf.constant([0], tf.int64), tf.constant([["a"]]),
                    tf.zeros([1, 1, RETRIEVAL_WIDTH]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="request_time must have one value per row"):
        module.rank(tf.constant(["u"]), tf.constant([["a"]]), tf.constant([["click"]]), tf.constant([[1]], tf.int64),
                    tf.constant([0, 0], tf.int64), tf.constant([["a"]]), tf.zeros([1, 1, RETRIEVAL_WIDTH]))


def test_served_scores_follow_the_request_time_through_item_age():
    module = RankerModule(_trained(), ["u1"], np.ones((1, 2), np.float32), np.zeros(2, np.float32))
    unit = _unit()
    merged = X.merge(unit.candidates)
    req = _request(unit, merged, X.candidate_features(unit, merged, POP, ITEM_CAT))
    at = {t: module.rank(**dict(req, **{N.REQUEST_TIME: tf.constant([t], tf.int64)}))[N.SCORE].numpy()[0]
          for t in (0, 40 * DAY, 4000 * DAY)}
    assert not np.allclose(at[40 * DAY], at[4000 * DAY])  # known ages moved the scores
    unknown = [j for j, i in enumerate(merged) if CREATED.get(i, -1) == -1]  # "c", "zz": no creation time
    np.testing.assert_allclose(at[40 * DAY][unknown], at[4000 * DAY][unknown], rtol=1e-6)


def test_user_vectors_stay_out_of_the_saved_graph(pb_growth):
    trained = _trained()

    def build(n):
        return RankerModule(trained, pb_growth.users(n), np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32),
                            np.zeros(2, np.float32))
    assert pb_growth(build, save) < pb_growth.limit
