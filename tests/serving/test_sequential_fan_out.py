"""``sequential_retrieval`` in the multi-stage client: a retriever of the fan-out, no ranker source of its own.

The ranker's ``retrieval_features`` stay 15 wide (``names.RANKER_SOURCES``); a candidate only the
sequence model retrieved reaches the ranker with the zeros of "retrieved by none of its retrievers".
The fan-out itself on the real exports: ``tests/e2e/test_multistage_served.py``.
"""
import numpy as np

from commerce_recsys_client import names as N
from commerce_recsys_client.client import RankedItem, retrieval_features
from commerce_recsys_client.multistage import RETRIEVERS, Config, RankRequest
from commerce_recsys_client.ranking import SOURCE_MAP, ServedRanker


def test_the_fan_out_considers_the_sequence_model_and_its_twin():
    assert N.SEQUENTIAL_RETRIEVAL in RETRIEVERS and N.SEQUENTIAL_RETRIEVAL in Config().retrievers
    assert N.BRUTE_FORCE_TWINS[N.SEQUENTIAL_RETRIEVAL] == N.SEQUENTIAL_RETRIEVAL_BRUTE_FORCE
    # it answers what the fan-out asks of every retriever (recommend_user, and the feedback path's vectors)
    assert {N.RECOMMEND_USER, N.USER_VECTOR, N.RECOMMEND_VECTOR, N.ITEM_EMBEDDING} <= set(
        N.SIGNATURES[N.SEQUENTIAL_RETRIEVAL])
    assert len(N.RANKER_SOURCES) * len(N.RANKER_SOURCE_FEATURES) == 15  # the ranker's contract is unchanged


class _RecordingClient:
    """Records what ``ServedRanker`` sends to ``RecommenderClient.rank`` and answers in candidate order."""

    def __init__(self):
        self.calls = []

    def rank(self, user_id, candidates, **kwargs):
        self.calls.append(dict(kwargs, user_id=user_id, candidates=list(candidates)))
        n = len(candidates)
        return [RankedItem(c, float(n - i), 0.5, 0.5, 0.25) for i, c in enumerate(candidates)]


def test_sequential_candidates_are_ranked_on_the_features_of_the_sources_they_share():
    assert N.SEQUENTIAL_RETRIEVAL not in SOURCE_MAP and N.SEQUENTIAL_RETRIEVAL_BRUTE_FORCE not in SOURCE_MAP
    assert set(SOURCE_MAP.values()) <= set(N.RANKER_SOURCES)
    candidates = ("a", "b", "c")  # a: two-tower and sequence model; b: sequence model only; c: popularity
    features = {f"{N.RETRIEVAL}_rank": [1, 0, 0], f"{N.RETRIEVAL}_score": [0.9, 0, 0],
                f"{N.SEQUENTIAL_RETRIEVAL}_rank": [2, 1, 0], f"{N.SEQUENTIAL_RETRIEVAL}_score": [3.5, 4.0, 0],
                "popularity_rank": [0, 0, 1], "popularity_score": [0, 0, 12.0]}
    request = RankRequest("u1", (), 1.0e9, candidates, {k: np.asarray(v, np.float32) for k, v in features.items()},
                          history=("x",))
    client = _RecordingClient()
    out = ServedRanker(client).rank(request)
    assert out["score"].tolist() == [3.0, 2.0, 1.0]
    (call,) = client.calls
    assert call["candidates"] == list(candidates)  # the sequence model's own candidate is ranked too
    assert set(call["sources"]) == {"two_tower", "popularity"}
    feats = retrieval_features(call["candidates"], call["sources"])
    assert feats.shape == (1, 3, 15)
    width = len(N.RANKER_SOURCE_FEATURES)
    two_tower = N.RANKER_SOURCES.index("two_tower") * width
    np.testing.assert_allclose(feats[0, 0, two_tower:two_tower + width], [1.0, 0.9, 1.0], rtol=1e-6)
    assert not feats[0, 1].any()  # b: only the sequence model had it
    popularity = N.RANKER_SOURCES.index("popularity") * width
    np.testing.assert_allclose(feats[0, 2, popularity:popularity + width], [1.0, np.log1p(12.0), 1.0], rtol=1e-6)
