"""The served ``ranker`` as the multi-stage Recommender's ranking stage (``multistage.Ranker``).

``ServedRanker(client)`` turns a :class:`commerce_recsys_client.multistage.RankRequest` into one
``RecommenderClient.rank`` call, mapping the Recommender's candidate sources onto the sources the
ranker was trained with (``names.RANKER_SOURCES``):

* ``graph_retrieval`` → ``graph``, ``retrieval`` → ``two_tower``, ``dual_retrieval`` → ``student``:
  rank and score as retrieved. A ranker trained without the student source (the pipeline's
  default) ignores that slot: features constant in training are held at 0 inside the model;
* ``repeat`` and ``popularity`` carry raw counts in the Recommender; the ranker was trained on
  ``log1p(count)`` (``transform.exposures``), so the adapter sends that;
* other sources (``generative``, ``sequential_retrieval``) have no slot in the trained model: their
  candidates are still ranked, on the features of the sources they share (a candidate only the
  sequence model retrieved gets the zeros of "retrieved by none of the ranker's retrievers", plus
  its repeat/popularity features). ``sequential_retrieval`` is deliberately not mapped onto an
  existing slot: the ``two_tower`` and ``student`` slots carry the scores and ranks of the models
  the ranker was trained on, and the SASRec model's raw dot products are on another scale; giving it
  a slot of its own means training the ranker with it (a 6th source, ``names.RANKER_SOURCES``).

The ranker's repeat and affinity features need the user's **history** (it was trained on the full
one): ``history_of(user_id)`` returns it as ``(items oldest first, behaviours, order gaps)``;
without it the request's ``history`` (the caller's ``RequestContext.history``) is sent, each item its
own order and a purchase. The session's ``recent_actions`` (newest first in the request) are
appended as the newest order.

``request_time``: the request's time goes to the ranker for the candidates' age; a fixed
``request_time`` replaces it (replaying a historical dataset such as MovieLens-100K, whose
catalogue ages stop in 1998, pass the data's last timestamp).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from commerce_recsys_client import names as N

SOURCE_MAP = {N.GRAPH_RETRIEVAL: "graph", N.RETRIEVAL: "two_tower", N.DUAL_RETRIEVAL: "student", "repeat": "repeat",
              "popularity": "popularity",
              # stock TF Serving serves the exact twins in their place
              N.GRAPH_RETRIEVAL_BRUTE_FORCE: "graph", N.RETRIEVAL_BRUTE_FORCE: "two_tower",
              N.DUAL_RETRIEVAL_BRUTE_FORCE: "student"}
_COUNT_SOURCES = {"repeat", "popularity"}


class ServedRanker:
    def __init__(self, client, model_name: str = N.RANKER, history_of=None, request_time: float | None = None):
        self.client = client
        self.model_name = model_name
        self.history_of = history_of
        self.request_time = request_time

    def rank(self, request) -> Mapping[str, np.ndarray]:
        candidates = list(request.candidate_ids)
        sources: dict[str, list[tuple[str, float]]] = {}
        for theirs, ours in SOURCE_MAP.items():
            ranks = request.features.get(f"{theirs}_rank")
            scores = request.features.get(f"{theirs}_score")
            if ranks is None:
                continue
            ranks, scores = np.asarray(ranks).tolist(), np.asarray(scores).tolist()  # Python floats: no numpy per item
            got = [(int(r), c, s) for c, r, s in zip(candidates, ranks, scores) if r > 0]
            got.sort()
            sources[ours] = [(c, math.log1p(max(s, 0.0)) if ours in _COUNT_SOURCES else s) for _, c, s in got]
        actions = list(request.recent_actions)[::-1]  # oldest first
        if self.history_of is not None:
            items, types, gaps = self.history_of(request.user_id)
        else:
            items = list(getattr(request, "history", ()) or ())
            types, gaps = [N.TARGET_BEHAVIOUR] * len(items), list(range(len(items), 0, -1))
        shift = 1 if actions else 0  # the session is the newest order
        items, types = list(items) + [a[0] for a in actions], list(types) + [a[1] for a in actions]
        gaps = [int(g) + shift for g in gaps] + [1] * len(actions)
        ranked = self.client.rank(request.user_id, candidates, sources=sources, history=items[-500:],
                                  history_types=types[-500:], history_gaps=gaps[-500:],
                                  request_time=self.request_time if self.request_time is not None
                                  else request.request_time, model_name=self.model_name)
        by_id = {r.item_id: r for r in ranked}
        rows = [by_id[c] for c in candidates]
        return {"score": np.array([r.score for r in rows], np.float64),
                "pctr": np.array([r.pctr for r in rows], np.float64),
                "pcvr": np.array([r.pcvr for r in rows], np.float64),
                "pctcvr": np.array([r.pctcvr for r in rows], np.float64)}
