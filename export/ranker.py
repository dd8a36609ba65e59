"""The ``ranker`` SavedModel: a user and their candidates → pCTR, pCVR, pCTCVR and the served score.

Signature ``rank`` (also ``serving_default``), every tensor named in ``recsys.names``:

* ``user_id`` string [B]: the long-term user vector is the graph retriever's (the table is
  copied in at export; an unknown user gets the graph's unknown-user vector, as in training);
* ``history`` string [B, H] ("" padded at the end, oldest first), ``history_types`` string
  [B, H] (behaviours; an unknown one counts as ``click``), ``history_gaps`` int64 [B, H]
  (orders before the request: 1 = the latest order): the user's history, up to
  ``max_history`` items; the last ``actions`` feed TransAct, all of them the repeat and
  category-affinity features;
* ``request_time`` int64 [B]: epoch seconds of the request, for the candidates' age (the
  catalogue's ``created_at``); <= 0 means unknown (the age feature is then off, as for items
  without a creation time). Replaying a historical dataset, pass its time, not the clock's;
* ``candidates`` string [B, N] ("" padded) and ``retrieval_features`` float32 [B, N, 3 S]
  (per source of ``transform.exposures.SOURCES``: retrieved 0/1, score, 1/rank; zeros where
  the source did not retrieve the item);
* → ``pctr``, ``pcvr``, ``pctcvr``, ``score`` float32 [B, N]; padded candidates score -inf.
  An unknown candidate id is embedded as the padding item (zero content, unknown category,
  popularity 0): a defined fallback, not an error.

The user–item features the Python exposure builder computes (``transform.exposures``) are
computed here in the graph from the request, so training and serving share one definition:
``tests/export/test_ranker_export.py`` checks both agree on real exposure rows.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from export.retrieval import string_table
from recsys import names as N
from trainer.base import frozen_table
from trainer.ranker.data import ACTION_TYPES
from trainer.ranker.model import final_score
from transform.exposures import SOURCE_FEATURES, SOURCES

RETRIEVAL_WIDTH = len(SOURCES) * len(SOURCE_FEATURES)


class RankerModule(tf.Module):
    def __init__(self, trained, user_ids, user_vectors: np.ndarray, unknown_user_vector: np.ndarray,
                 max_history: int = 500, max_candidates: int = 1000):
        super().__init__()
        self.model = trained.model
        self.cvr_power = float(trained.cvr_power)
        self.actions = int(trained.config.actions)
        self.max_history = max_history
        self.max_candidates = max_candidates
        item_ids = [str(i) for i in np.asarray(trained.item_ids).tolist()]
        self.num_items = len(item_ids)
        self.item_table = string_table(item_ids, default=self.num_items)
        self.item_category = self.model.item_category                       # [I + 1] (last = unknown)
        self.popularity = frozen_table(np.append(np.asarray(trained.popularity, np.float32), 0.0).astype(np.float32))
        unknown = np.asarray(unknown_user_vector, np.float32).reshape(1, -1)
        vectors = np.concatenate([np.asarray(user_vectors, np.float32).reshape(len(user_ids), unknown.shape[1]),
                                  unknown])
        self.user_vectors = frozen_table(vectors)
        self.user_table = string_table([str(u) for u in user_ids], default=len(user_ids))
        self.type_table = string_table(list(ACTION_TYPES[1:]), default=0)     # unknown behaviour → click

    def features(self, history, history_gaps, candidates, retrieval_features):
        """Dense features [B, N, F] in ``transform.exposures.FEATURE_NAMES`` order."""
        valid = tf.not_equal(history, "")                                          # [B, H]
        hist = tf.where(valid, self.item_table.lookup(history), -1)               # -1: padding
        cand = self.item_table.lookup(candidates)                                  # [B, N]
        same = tf.equal(candidates[:, :, None], history[:, None, :]) & valid[:, None, :]  # [B, N, H]
        count = tf.reduce_sum(tf.cast(same, tf.float32), -1)
        gaps = tf.cast(history_gaps, tf.float32)
        big = tf.constant(1e9)
        min_gap = tf.reduce_min(tf.where(same, gaps[:, None, :], big), -1)
        recency = tf.where(count > 0, 1.0 / tf.maximum(min_gap, 1.0), 0.0)
        hist_len = tf.reduce_sum(tf.cast(valid, tf.float32), -1)                  # [B]
        orders = self._distinct_orders(history_gaps, valid)                        # [B]
        share = count / tf.maximum(orders, 1.0)[:, None]
        cand_idx = tf.where(cand < 0, tf.cast(self.num_items, tf.int64), cand)
        pop = tf.math.log1p(tf.gather(self.popularity, cand_idx))
        hist_idx = tf.where(hist < 0, tf.cast(self.num_items, tf.int64), hist)
        hist_cat = tf.where(valid, tf.gather(self.item_category, hist_idx), -1)
        cand_cat = tf.gather(self.item_category, cand_idx)
        same_cat = tf.reduce_sum(tf.cast(tf.equal(cand_cat[:, :, None], hist_cat[:, None, :]), tf.float32), -1)
        affinity = tf.where(hist_len[:, None] > 0, same_cat / tf.maximum(hist_len[:, None], 1.0), 0.0)
        n = tf.shape(candidates)[1]
        length = tf.broadcast_to(tf.math.log1p(hist_len)[:, None], [tf.shape(candidates)[0], n])
        user_item = tf.stack([tf.math.log1p(count), recency, share, pop, affinity, length], -1)
        return tf.concat([retrieval_features, user_item], -1)

    @staticmethod
    def _distinct_orders(gaps, valid):
        """Distinct order positions (gaps) among the valid history items, per row."""
        g = tf.where(valid, gaps, tf.cast(-1, gaps.dtype))
        s = tf.sort(g, axis=1)
        first = tf.concat([tf.ones_like(s[:, :1], tf.bool), tf.not_equal(s[:, 1:], s[:, :-1])], 1)
        return tf.reduce_sum(tf.cast(first & (s >= 0), tf.float32), 1)

    def recent_actions(self, history, history_types, history_gaps):
        """The last ``actions`` valid history items, right-aligned: (items [B, A], types, gaps), padding in front."""
        valid = tf.not_equal(history, "")
        length = tf.reduce_sum(tf.cast(valid, tf.int32), 1)                        # [B]
        a = self.actions
        src = length[:, None] - a + tf.range(a)[None, :]                           # [B, A]
        ok = src >= 0
        idx = tf.maximum(src, 0)
        items = tf.gather(history, idx, batch_dims=1)
        types = tf.gather(history_types, idx, batch_dims=1)
        gaps = tf.gather(history_gaps, idx, batch_dims=1)
        pos = self.item_table.lookup(items)
        pos = tf.where(ok, pos, tf.cast(self.num_items, tf.int64))
        type_id = tf.where(ok, tf.cast(self.type_table.lookup(types), tf.int32) + 1, 0)
        return tf.cast(pos, tf.int32), type_id, tf.where(ok, tf.cast(gaps, tf.int32), 0)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name=N.USER_ID),
        tf.TensorSpec([None, None], tf.string, name=N.HISTORY),
        tf.TensorSpec([None, None], tf.string, name=N.HISTORY_TYPES),
        tf.TensorSpec([None, None], tf.int64, name=N.HISTORY_GAPS),
        tf.TensorSpec([None], tf.int64, name=N.REQUEST_TIME),
        tf.TensorSpec([None, None], tf.string, name=N.CANDIDATES),
        tf.TensorSpec([None, None, RETRIEVAL_WIDTH], tf.float32, name=N.RETRIEVAL_FEATURES)])
    def rank(self, user_id, history, history_types, history_gaps, request_time, candidates, retrieval_features):
        tf.debugging.assert_equal(tf.shape(history), tf.shape(history_types), message="history_types must match history")
        tf.debugging.assert_equal(tf.shape(history), tf.shape(history_gaps), message="history_gaps must match history")
        tf.debugging.assert_equal(tf.shape(candidates), tf.shape(retrieval_features)[:2],
                                  message="retrieval_features must be [B, N, 3 S] for candidates [B, N]")
        tf.debugging.assert_equal(tf.shape(request_time)[0], tf.shape(candidates)[0],
                                  message="request_time must have one value per row")
        tf.debugging.assert_less_equal(tf.shape(history)[1], self.max_history, message="history too long")
        tf.debugging.assert_less_equal(tf.shape(candidates)[1], self.max_candidates, message="too many candidates")
        feats = self.features(history, history_gaps, candidates, retrieval_features)
        actions, types, gaps = self.recent_actions(history, history_types, history_gaps)
        cand = self.item_table.lookup(candidates)
        cand = tf.cast(tf.where(cand < 0, tf.cast(self.num_items, tf.int64), cand), tf.int32)
        user = tf.gather(self.user_vectors, self.user_table.lookup(user_id))
        out = self.model({"items": cand, "features": feats, "actions": actions, "action_type": types,
                          "action_gap": gaps, "user_vector": user, "request_time": request_time}, training=False)
        real = tf.not_equal(candidates, "")
        score = tf.where(real, final_score(out["pctr"], out["pcvr"], self.cvr_power), -np.inf)
        return {N.PCTR: out["pctr"], N.PCVR: out["pcvr"], N.PCTCVR: out["pctcvr"], N.SCORE: score}

    def signatures(self) -> dict:
        fn = self.rank.get_concrete_function()
        return {N.RANK: fn, N.SERVING_DEFAULT: fn}


def save(module: RankerModule, export_dir: str) -> None:
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
