"""Serving SavedModels of the dual-head model: ``dual_retrieval`` (+ brute-force twin) and ``generative``;
of its SASRec-style variant: ``sequential_retrieval`` (+ brute-force twin).

Both take raw item ids. Requests carry histories oldest first, right-padded
with ""; only the last ``max_history`` items are read. Without order
positions every item is its own order (leave-one-out data); basket clients
send ``order_pos`` (the order each item was bought in; any increasing
integers). Behaviour types, when not sent, are the most frequent training one. A stored user
(``recommend_user``, ``user_vector``) is encoded from the history as training saw it: its order
positions and behaviours (``StoredHistories``).

``dual_retrieval`` (``export.RetrievalModule`` contract, plus):

* ``recommend_orders``: ``history`` string [B, L], ``order_pos`` int64 [B, L],
  ``k`` int32 [B], ``exclude`` string [B, E] → ``item_ids`` [B, K], ``scores`` [B, K];
* ``embed_content``: ``content`` float32 [B, Dc] (the content space's item
  embedding, e.g. from the ``item_encoder`` or the text encoder) → ``embedding``
  float32 [B, D]: a new item's vector for the index, no retraining.

``generative`` (constrained beam search, ``beam_width`` beams, K ≤ beam width):

* ``serving_default`` (``history``, ``k``, ``exclude``), ``recommend_orders``
  (+ ``order_pos``), ``recommend_user`` (``user_id``, ``k``, ``exclude``) →
  ``item_ids`` string [B, K] and ``scores`` float32 [B, K] = log P(item | history).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from export import retrieval as export
from recsys import names as N
from trainer.base import frozen_table
from trainer.dual_head import EVENT_TYPES, DualHeadModel, ItemSpace

GENERATIVE = "generative"


class _Untracked:
    """A holder tf.Module's attribute tracking does not look into (a plain object)."""

    def __init__(self, value):
        self.value = value


class ModelWeights(tf.Module):
    """A ``DualHeadModel`` as a served module reads it: its variables and item tables, not the Keras object.

    A SavedModel that tracks the Keras model itself makes tf_keras serialise the model's ``get_config``, which
    holds the whole item space (``ItemSpace.to_config``: every item's content embedding as Python floats). At
    1,000,000 items that took the DualHeadExporter from 13.8 GB to past 22 GB while saving, and it was
    OOM-killed (issue 14). The served functions only read the variables, which are tracked here.
    """

    def __init__(self, model: DualHeadModel):
        super().__init__()
        self._held = _Untracked(model)
        self.model_variables = list(model.variables)
        self.item_tables = list(model.item_tables.variables())  # the model's Keras weights leave them out

    @property
    def model(self) -> DualHeadModel:
        return self._held.value


class HistoryInput(tf.Module):
    """Raw request tensors → model inputs: item indices, orders-before-target, behaviour [B, max_history]."""

    def __init__(self, items: ItemSpace, max_history: int, max_orders: int, order_positions: bool,
                 default_event: str):
        super().__init__()
        self.num_items = items.num_items
        self.pad = items.pad
        self.max_history = max_history
        self.max_orders = max_orders
        self.order_positions = order_positions
        self.item_table = export.string_table(items.item_ids.tolist(), default=items.oov)
        self.event_table = export.string_table(list(EVENT_TYPES), default=0)
        self.default_event = tf.constant(EVENT_TYPES.index(default_event), tf.int64)

    def __call__(self, history, order_pos=None, events=None):
        batch = tf.shape(history)[0]
        history = tf.concat([history, tf.fill([batch, 1], "")], axis=1)          # never zero columns
        width = tf.shape(history)[1]
        valid = tf.not_equal(history, "")
        if order_pos is None or not self.order_positions:
            order_pos = tf.broadcast_to(tf.range(width, dtype=tf.int64)[None], [batch, width])
        else:
            order_pos = tf.concat([tf.cast(order_pos, tf.int64), tf.zeros([batch, 1], tf.int64)], axis=1)
        lengths = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        start = tf.maximum(lengths - self.max_history, 0)
        cols = start[:, None] + tf.range(self.max_history)[None]                  # [B, H]
        inside = cols < lengths[:, None]
        cols = tf.minimum(cols, width - 1)
        items = tf.gather(self.item_table.lookup(history), cols, batch_dims=1)
        items = tf.where(inside, tf.cast(items, tf.int32), self.pad)
        pos = tf.gather(order_pos, cols, batch_dims=1)
        target = tf.reduce_max(tf.where(inside, pos, tf.constant(-(2 ** 62), tf.int64)), axis=1, keepdims=True) + 1
        rel = tf.clip_by_value(target - pos, 1, self.max_orders - 1)
        rel = tf.where(inside, tf.cast(rel, tf.int32), 0)
        if events is None:
            ev = tf.fill(tf.shape(items), self.default_event)
        else:
            events = tf.concat([events, tf.fill([batch, 1], "")], axis=1)           # as history
            ev = tf.gather(self.event_table.lookup(events), cols, batch_dims=1)
        ev = tf.where(inside, tf.cast(ev, tf.int32), 0)
        return items, rel, ev


class StoredHistories(tf.Module):
    """Each known user's latest history as the model was trained on it: item ids, order positions and behaviours.

    Tables [U+1, H] (the last row, all padding, answers an unknown user); ``(ids, order_pos, events)`` of
    ``user_id`` [B] is what ``HistoryInput`` takes, so a stored user is encoded exactly as training encoded the
    same history (its day/basket structure and click/purchase types), not as a history-only request would be.
    Item ids and behaviours are stored as int32 positions in one table of their distinct strings (``strings``; 0
    is ""). A tf.string cell takes 24 bytes or more: for 464,143 users × 50 items, loading them took 1,462 MB as
    strings and 527 MB as positions (``benchmarks/stored_histories_memory.py``; issue 14).
    """

    def __init__(self, users: list[str], histories: list[list[str]], order_pos: list[list[int]],
                 event_types: list[list[str]], max_history: int):
        super().__init__()
        if not len(users) == len(histories) == len(order_pos) == len(event_types):
            raise ValueError(f"{len(users)} users, {len(histories)} histories, {len(order_pos)} order position lists "
                             f"and {len(event_types)} behaviour lists: one each per user")
        width = max(1, min(max_history, max([len(h) for h in histories] + [1])))
        strings = {"": 0}
        ids = np.zeros((len(users) + 1, width), np.int32)
        pos = np.zeros((len(users) + 1, width), np.int64)
        events = np.zeros((len(users) + 1, width), np.int32)
        for i, (u, h, p, e) in enumerate(zip(users, histories, order_pos, event_types)):
            if not len(h) == len(p) == len(e):
                raise ValueError(f"user {u!r}: {len(h)} history items, {len(p)} order positions, {len(e)} behaviours")
            n = min(len(h), width)
            ids[i, :n] = [strings.setdefault(x, len(strings)) for x in h[len(h) - n:]]
            pos[i, :n] = p[len(p) - n:]
            events[i, :n] = [strings.setdefault(x, len(strings)) for x in e[len(e) - n:]]
        self.lookup = export.string_table(users, default=len(users))
        self.strings = frozen_table([x.encode() for x in strings], tf.string)
        self.ids = frozen_table(ids)
        self.order_pos = frozen_table(pos)
        self.events = frozen_table(events)

    def __call__(self, user_id):
        row = self.lookup.lookup(user_id)
        return (tf.gather(self.strings, tf.gather(self.ids, row)), tf.gather(self.order_pos, row),
                tf.gather(self.strings, tf.gather(self.events, row)))


class UserEncoder(tf.Module):
    """The retrieval head's query side for ``export.RetrievalModule``: raw history → user vector."""

    def __init__(self, model: DualHeadModel, inputs: HistoryInput):
        super().__init__()
        self.net = ModelWeights(model)
        self.inputs = inputs

    @property
    def model(self) -> DualHeadModel:
        return self.net.model

    def __call__(self, history, order_pos=None, events=None):
        items, rel, ev = self.inputs(history, order_pos, events)
        states, mask = self.model.encode(items, rel, ev)
        return self.model.user_vector(states, mask)


#: the served retrievers a ``DualHeadModel`` is exported as, and the variant each must be
#: (``trainer.dual_head.VARIANTS``): the dual head's student, and the SASRec-style sequence model
RETRIEVER_VARIANTS = {N.DUAL_RETRIEVAL: "dual_head", N.SEQUENTIAL_RETRIEVAL: "sasrec"}


class DualRetrievalModule(export.RetrievalModule):
    """``export.RetrievalModule`` over the retrieval head's vectors, with order positions and cold-start embedding.

    ``model_name`` says which served contract the module carries (``recsys.names.SIGNATURES``):
    ``dual_retrieval`` (the dual head's student: + ``recommend_orders`` and ``embed_content``) or
    ``sequential_retrieval`` (the SASRec-style variant: the two-tower's signatures; its items are
    free IDs, so it has no content path, and its positions count items, so order positions mean
    nothing to it). The model must be that name's variant (``RETRIEVER_VARIANTS``).
    """

    def __init__(self, model: DualHeadModel, inputs: HistoryInput, items: ItemSpace, catalog_embeddings: np.ndarray,
                 users: list[str], histories: list[list[str]], order_pos: list[list[int]],
                 event_types: list[list[str]], model_name: str = N.DUAL_RETRIEVAL, **kwargs):
        check_retriever_variant(model_name, model.config.variant)
        super().__init__(UserEncoder(model, inputs), items.item_ids.tolist(), items.item_ids, catalog_embeddings,
                         users, histories, max_history=inputs.max_history, **kwargs)
        self.model_name = model_name
        for name, attr in ((N.RECOMMEND_ORDERS, "recommend_orders"), (N.EMBED_CONTENT, "embed_content")):
            if name not in N.SIGNATURES[model_name]:
                # not in this contract: hidden, so saving does not trace it (the sasrec block has no content path)
                setattr(self, attr, None)
        self.content_dim = model.content_dim
        self.stored = StoredHistories(users, histories, order_pos, event_types, inputs.max_history)

    def _query(self, history, order_pos=None):
        return self.towers(history, order_pos)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name=N.HISTORY),
                                  tf.TensorSpec([None, None], tf.int64, name=N.ORDER_POS),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_orders(self, history, order_pos, k, exclude):
        return self._top_k(self._query(history, order_pos), k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_user(self, user_id, k, exclude):
        return self._top_k(self.towers(*self.stored(user_id)), k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID)])
    def user_vector(self, user_id):
        """The query ``recommend_user`` uses: the stored history with its order positions and behaviours."""
        return {N.EMBEDDING: self.towers(*self.stored(user_id))}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name=N.CONTENT)])
    def embed_content(self, content):
        return {N.EMBEDDING: self.towers.model.map_content(content)}

    def signatures(self) -> dict:
        sigs = super().signatures()
        sigs.update({N.RECOMMEND_ORDERS: self.recommend_orders, N.EMBED_CONTENT: self.embed_content})
        return {name: sigs[name] for name in N.SIGNATURES[self.model_name]}  # exactly the contract's


def check_retriever_variant(model_name: str, variant: str) -> None:
    """Refuses to export a model under a served name that is not its variant's (``RETRIEVER_VARIANTS``)."""
    if model_name not in RETRIEVER_VARIANTS:
        raise ValueError(f"a dual-head model is served as one of {sorted(RETRIEVER_VARIANTS)}, got {model_name!r}")
    if RETRIEVER_VARIANTS[model_name] != variant:
        want = next(n for n, v in RETRIEVER_VARIANTS.items() if v == variant) if variant in RETRIEVER_VARIANTS.values() \
            else "none"
        raise ValueError(f"{model_name!r} serves the {RETRIEVER_VARIANTS[model_name]!r} variant, but this model is "
                         f"{variant!r} (its served name: {want})")


class GenerativeModule(tf.Module):
    """History → top-K items with log-likelihoods by constrained beam search over Semantic IDs."""

    def __init__(self, model: DualHeadModel, inputs: HistoryInput, items: ItemSpace, users: list[str],
                 histories: list[list[str]], order_pos: list[list[int]], event_types: list[list[str]],
                 beam_width: int):
        super().__init__()
        if not model.generative:
            raise ValueError("this model was trained without a generative head")
        self.net = ModelWeights(model)
        self.inputs = inputs
        self.beam_width = beam_width
        self.max_k = min(beam_width, items.num_items)
        self.catalog_ids = frozen_table([i.encode() for i in items.item_ids.tolist()], tf.string)
        self.catalog_table = export.string_table(items.item_ids.tolist(), default=-1)
        self.stored = StoredHistories(users, histories, order_pos, event_types, inputs.max_history)

    @property
    def model(self) -> DualHeadModel:
        return self.net.model

    def _recommend(self, history, order_pos, k, exclude, events=None):
        items, rel, ev = self.inputs(history, order_pos, events)
        states, mask = self.model.encode(items, rel, ev)
        batch = tf.shape(history)[0]
        allowed = export.mask_excluded(tf.ones([batch, self.model.num_items]), self.catalog_table, exclude,
                                       value=0.0) > 0.5
        top, scores = self.model.beam_search(self.model.memory(states, mask), allowed, self.beam_width)
        kk = tf.clip_by_value(tf.reduce_max(k), 1, self.max_k)
        top, scores = top[:, :kk], scores[:, :kk]
        ids = tf.where(top >= 0, tf.gather(self.catalog_ids, tf.maximum(top, 0)), tf.constant(b""))
        return {N.ITEM_IDS: ids, N.SCORES: scores}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name=N.HISTORY),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_history(self, history, k, exclude):
        return self._recommend(history, None, k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name=N.HISTORY),
                                  tf.TensorSpec([None, None], tf.int64, name=N.ORDER_POS),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_orders(self, history, order_pos, k, exclude):
        return self._recommend(history, order_pos, k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_user(self, user_id, k, exclude):
        history, order_pos, events = self.stored(user_id)
        return self._recommend(history, order_pos, k, exclude, events)

    def signatures(self) -> dict:
        return {N.SERVING_DEFAULT: self.recommend_history, N.RECOMMEND_ORDERS: self.recommend_orders,
                N.RECOMMEND_USER: self.recommend_user}


def save_generative(module: GenerativeModule, export_dir: str) -> None:
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
