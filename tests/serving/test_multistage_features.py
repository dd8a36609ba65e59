"""The Recommender's ranking-stage plumbing, column at a time, equals the per-candidate code it replaced.

* the ``RankRequest.features`` columns (``merge``, ``<source>_score``, ``<source>_rank``);
* the ranked candidates built from the ranker's answer (scores per stage, order);
* ``check_id``'s control-character rule (now a regular expression);
* ``serving.client._strings`` on object arrays (now a list at a time).

No server: ``Recommender._rank`` is called with a ranker that records its request.
"""
from __future__ import annotations

import numpy as np
import pytest

from serving import client as C
from serving import rerank as R
from serving.items import ItemTable
from serving.multistage import BadRequest, Recommender, check_id
from serving.store import UserState

SOURCES = ("graph_retrieval", "retrieval", "repeat", "popularity")


def candidates(n=300, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        found = {s: {"rank": int(rng.integers(1, 400)), "score": float(rng.normal())}
                 for s in SOURCES if rng.random() < 0.5}
        if not found or rng.random() < 0.1:
            found["popularity"] = {"rank": i + 1}  # a source entry without a score
        out.append(R.Candidate(f"i{i}", float(rng.random()), found, {"merge": float(rng.random())}))
    return out


class Recording:
    def __init__(self, extra=True):
        self.requests, self.extra = [], extra

    def rank(self, request):
        self.requests.append(request)
        n = len(request.candidate_ids)
        rng = np.random.default_rng(1)
        out = {"score": rng.random(n).astype(np.float32)}
        if self.extra:
            out.update(pctr=rng.random(n), pcvr=rng.random(n).astype(np.float32), bad=rng.random(n + 1))
        return out


def old_features(cands):
    names = sorted({s for c in cands for s in c.sources})
    features = {"merge": np.array([c.score for c in cands], np.float32)}
    for s in names:
        features[f"{s}_score"] = np.array([c.sources.get(s, {}).get("score", 0.0) for c in cands], np.float32)
        features[f"{s}_rank"] = np.array([c.sources.get(s, {}).get("rank", 0) for c in cands], np.float32)
    return features


def old_ranked(cands, out):
    score = np.asarray(out["score"], np.float64)
    extra = {k: np.asarray(v, np.float64) for k, v in out.items() if k != "score"}
    ranked = []
    for n, c in enumerate(cands):
        scores = dict(c.scores, ranker=float(score[n]), **{k: float(v[n]) for k, v in extra.items()
                                                          if np.shape(v) == (len(cands),)})
        ranked.append(R.Candidate(c.item_id, float(score[n]), c.sources, scores, c.rule))
    ranked.sort(key=lambda c: -c.score)
    return ranked


@pytest.mark.parametrize("extra", [True, False])
def test_rank_stage_features_and_ranked_candidates_equal_the_per_candidate_code(extra):
    rec = Recommender(None, ItemTable((), {}, {}))
    try:
        cands = candidates()
        ranker = Recording(extra)
        fallbacks = []
        ranked, by = rec._rank(ranker, "u1", UserState(), 1e9, cands, {}, fallbacks, ["h1"])
        assert by == "ranker" and fallbacks == []
        request = ranker.requests[0]
        want = old_features(cands)
        assert list(request.features) == list(want)
        for name, column in want.items():
            got = request.features[name]
            assert got.dtype == column.dtype and np.array_equal(got, column), name
        expected = old_ranked(cands, ranker.rank(request))
        assert [(c.item_id, c.score, c.scores, c.rule) for c in ranked] == \
               [(c.item_id, c.score, c.scores, c.rule) for c in expected]
        assert all(type(v) is float for c in ranked for v in c.scores.values())
    finally:
        rec.close()


@pytest.mark.parametrize("value", ["a\x00b", "a\x1f", "x\ny", "a\tb", "é\x07"])
def test_control_characters_are_refused(value):
    with pytest.raises(BadRequest, match="control characters"):
        check_id(value, "user_id")


@pytest.mark.parametrize("value", ["a b", "\x7f", "é", "한국어", "😀", "a\u2028", " x", "\ud800"])
def test_other_characters_pass(value):
    assert check_id(value, "user_id") == value


def old_strings(array, name):
    import base64

    def leaf(v):
        if name.endswith("_bytes"):
            if isinstance(v, dict):
                return base64.b64decode(v["b64"])
            return v if isinstance(v, bytes) else str(v).encode("utf-8")
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    out = np.empty(array.shape, dtype=object)
    for index, v in np.ndenumerate(array):
        out[index] = leaf(v)
    return out


@pytest.mark.parametrize("name", ["item_ids", "data_bytes"])
@pytest.mark.parametrize("array", [
    np.array([[b"a", "é".encode(), b"\xff"], [b"", b"x", b"y"]], dtype=object),
    np.array(["a", "é", {"b64": "aGk="}], dtype=object), np.empty((2, 0), dtype=object),
    np.array([b"a", b"bc"]), np.array(["a", "bc"]), np.array(b"x", dtype=object),
])
def test_client_strings_equal_the_per_element_loop(array, name):
    got, want = C._strings(array, name), old_strings(array, name)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert [(type(a), a) for a in got.ravel().tolist()] == [(type(b), b) for b in want.ravel().tolist()]
