"""Exposure rows on tiny exact examples: timeline, candidate sources, merge order, features, labels."""
import math

import numpy as np
import pytest

from recsys import features as F
from recsys import names as N
from transform import exposures as X


def _row(pos, hist, targets, types=None):
    return {F.USER_ID.name: "u", F.HISTORY_ITEM_ID.name: [i for i, _ in hist],
            F.HISTORY_ORDER_POS.name: [p for _, p in hist], F.HISTORY_EVENT_TYPE.name: ["click"] * len(hist),
            F.TARGET_ITEM_ID.name: targets, F.TARGET_EVENT_TYPE.name: types or ["purchase"] * len(targets),
            F.TARGET_ORDER_POS.name: pos, F.TARGET_TIMESTAMP.name: 100 + pos}


def test_timeline_is_the_last_rows_history_and_targets():
    rows = [_row(2, [("b", 1)], ["c"]), _row(3, [("a", 0), ("b", 1), ("c", 2)], ["d"]), _row(1, [("a", 0)], ["b"])]
    got = X.user_timeline(rows)
    assert [(a.order_pos, a.item_id, a.behaviour) for a in got] == [
        (0, "a", "click"), (1, "b", "click"), (2, "c", "click"), (3, "d", "purchase")]


def test_units_of_user_rank_window_eval_and_test_rows_with_the_full_history():
    from transform.ranking_window import WINDOW

    full = [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
    rows = [(F.TRAIN, _row(1, full[:1], ["b"])), (WINDOW, _row(2, full[1:2], ["c"])),  # history cut to 1 item
            (F.EVAL, _row(3, full[:3], ["d"])), (F.TEST, _row(4, full, ["e"]))]
    units = X.units_of_user(rows)
    assert [(u.split, u.order_pos) for u in units] == [(F.TRAIN, 2), (F.EVAL, 3), (F.TEST, 4)]
    assert [a.item_id for a in units[0].history] == ["a", "b"]  # not only the cut history ["b"]
    assert [a.item_id for a in units[2].history] == ["a", "b", "c", "d"]
    assert X.units_of_user(rows[:2]) == []  # no validation/test row: no complete timeline


def test_unit_start_with_events_sharing_an_order_position():
    # MovieLens: one order per day, each interaction its own unit
    from transform.ranking_window import WINDOW

    rows = [(WINDOW, _row(0, [("a", 0)], ["b"])), (F.TEST, _row(0, [("a", 0), ("b", 0)], ["c"]))]
    units = X.units_of_user(rows)
    assert [[a.item_id for a in u.history] for u in units] == [["a"], ["a", "b"]]
    with pytest.raises(ValueError, match="not in the user's timeline"):
        X.unit_start(X.user_timeline([rows[1][1]]), _row(0, [("z", 0)], ["b"]))


def test_repeat_candidates_by_count_then_recency():
    hist = [X.Action(0, "a", "purchase"), X.Action(1, "b", "purchase"), X.Action(2, "a", "purchase"),
            X.Action(3, "c", "purchase")]
    ids, scores = X.repeat_candidates(hist, 2)
    assert ids == ["a", "c"]  # a twice; then c (more recent than b)
    assert scores == [math.log1p(2), math.log1p(1)]


def test_popularity_candidates_skip_excluded():
    counts = {"x": 5, "y": 3, "z": 1}
    assert X.popularity_candidates(counts, ["x", "y", "z"], {"x"}, 2) == (["y", "z"], [math.log1p(3), math.log1p(1)])


def test_merge_orders_by_best_rank_then_source_priority():
    cands = {"two_tower": (["b", "a"], [0.9, 0.8]), "graph": (["a", "c"], [0.5, 0.4]), "popularity": (["d"], [1.0])}
    # rank 0: a (graph) before b (two_tower) before d (popularity); rank 1: c
    assert X.merge(cands) == ["a", "b", "d", "c"]


def test_exposure_row_features_and_labels():
    hist = [X.Action(0, "a", "purchase"), X.Action(1, "b", "click"), X.Action(1, "a", "purchase")]
    unit = X.Unit("u", F.EVAL, hist, targets=["a", "z"], target_behaviour=["purchase", "click"], order_pos=3,
                  timestamp=7, candidates={"graph": (["z", "a"], [0.5, 0.25]), "repeat": (["a"], [math.log1p(2)])},
                  user_vector=np.array([1.0, 2.0], np.float32))
    counts = {"a": 4, "z": 0}
    category = {"a": "c1", "b": "c1", "z": "c2"}
    row, stats = X.exposure_row(unit, counts, category)
    assert row[X.CANDIDATE_ITEM_ID.name] == ["z", "a"]
    assert row[X.LABEL_CLICK.name] == [1, 1]
    assert row[X.LABEL_CONVERSION.name] == [0, 1]  # z was clicked, not bought
    f = np.array(row[X.CANDIDATE_FEATURES.name]).reshape(2, -1)
    col = {n: i for i, n in enumerate(X.FEATURE_NAMES)}
    assert f[1, col["graph_in"]] == 1 and f[1, col["graph_score"]] == 0.25 and f[1, col["graph_rrank"]] == 0.5
    assert f[1, col["repeat_rrank"]] == 1.0 and f[0, col["repeat_in"]] == 0
    assert f[1, col["repeat_count_log"]] == pytest.approx(math.log1p(2))
    assert f[1, col["repeat_recency"]] == pytest.approx(1 / 2)  # last bought at order 1, unit at 3
    assert f[1, col["repeat_share"]] == pytest.approx(2 / 2)    # in both of the 2 orders
    assert f[1, col["popularity_log"]] == pytest.approx(math.log1p(4))
    assert f[1, col["category_affinity"]] == pytest.approx(3 / 3) and f[0, col["category_affinity"]] == 0
    assert row[X.ACTION_GAP.name] == [3, 2, 2]
    assert stats == {"split": F.EVAL, "candidates": 2, "targets": 2, "positives": 2, "any_positive": 1}


def test_summarise():
    s = X.summarise([{"split": "eval", "candidates": 4, "targets": 2, "positives": 1, "any_positive": 1},
                     {"split": "eval", "candidates": 2, "targets": 1, "positives": 0, "any_positive": 0}])
    assert s["eval"]["units"] == 2 and s["eval"]["candidates_per_unit"] == 3.0
    assert s["eval"]["units_with_positive"] == 0.5 and s["eval"]["target_recall"] == pytest.approx(1 / 3)


def test_the_student_source_is_on_for_both_sets_or_neither():
    prefix = X.RetrieverSet("tt", "g", {}, student_dir="prefix_student")
    served = X.RetrieverSet("tt", "g", {})
    with pytest.raises(ValueError, match="both a prefix student"):
        X.CandidateFn(prefix, served, {}, exclude_history=True)
    X.CandidateFn(prefix, X.RetrieverSet("tt", "g", {}, student_dir="student"), {}, exclude_history=True)
    assert "student" in X.SOURCES and X.DEFAULT_TOP_N["student"] == 100


# --- the vectorised batch path (issue 14): the same records as the per-unit path, to the byte ----------------------

def _canonical(example: bytes) -> bytes:
    """The message's deterministic bytes (features in key order): a protobuf map serializes in an order that
    changes from message to message, so two equal rows of the per-unit path need not have equal bytes."""
    import tensorflow as tf

    return tf.train.Example.FromString(example).SerializeToString(deterministic=True)


def _per_unit(units, counts, category, max_actions=X.MAX_ACTIONS):
    """The former path: ``exposure_row`` + ``to_example`` unit by unit (canonical bytes)."""
    return [(_canonical(X._to_example(row)), stats) for row, stats in
            (X.exposure_row(u, counts, category, max_actions) for u in units)]


def _vectorised(units, counts, category, max_actions=X.MAX_ACTIONS):
    return X.exposure_examples(units, X.unit_sources(units), X.ItemLookup(counts, category), max_actions)


def _parsed(example: bytes) -> dict:
    import tensorflow as tf

    out = {}
    for name, f in tf.train.Example.FromString(example).features.feature.items():
        kind = f.WhichOneof("kind")
        out[name] = list(getattr(f, kind).value)
    return out


def test_vectorised_rows_of_the_by_hand_example():
    """The by-hand figures of ``test_exposure_row_features_and_labels`` from the vectorised path."""
    hist = [X.Action(0, "a", "purchase"), X.Action(1, "b", "click"), X.Action(1, "a", "purchase")]
    unit = X.Unit("u", F.EVAL, hist, targets=["a", "z"], target_behaviour=["purchase", "click"], order_pos=3,
                  timestamp=7, candidates={"graph": (["z", "a"], [0.5, 0.25]), "repeat": (["a"], [math.log1p(2)])},
                  user_vector=np.array([1.0, 2.0], np.float32))
    [(example, stats)] = _vectorised([unit], {"a": 4, "z": 0}, {"a": "c1", "b": "c1", "z": "c2"})
    row = _parsed(example)
    assert row[X.CANDIDATE_ITEM_ID.name] == [b"z", b"a"]
    assert row[X.LABEL_CLICK.name] == [1, 1] and row[X.LABEL_CONVERSION.name] == [0, 1]
    f = np.array(row[X.CANDIDATE_FEATURES.name]).reshape(2, -1)
    col = {n: i for i, n in enumerate(X.FEATURE_NAMES)}
    assert f[1, col["graph_in"]] == 1 and f[1, col["graph_score"]] == 0.25 and f[1, col["graph_rrank"]] == 0.5
    assert f[0, col["graph_rrank"]] == 1.0 and f[0, col["graph_score"]] == 0.5
    assert f[1, col["repeat_rrank"]] == 1.0 and f[0, col["repeat_in"]] == 0
    assert f[1, col["repeat_count_log"]] == np.float32(math.log1p(2)) and f[0, col["repeat_count_log"]] == 0
    assert f[1, col["repeat_recency"]] == 0.5 and f[0, col["repeat_recency"]] == 0  # last bought at order 1, unit at 3
    assert f[1, col["repeat_share"]] == 1.0  # in both of the 2 orders
    assert f[1, col["popularity_log"]] == np.float32(math.log1p(4)) and f[0, col["popularity_log"]] == 0
    assert f[1, col["category_affinity"]] == 1.0 and f[0, col["category_affinity"]] == 0
    assert f[0, col["history_len_log"]] == np.float32(math.log1p(3))
    assert row[X.ACTION_GAP.name] == [3, 2, 2] and row[X.USER_VECTOR.name] == [1.0, 2.0]
    assert stats == {"split": F.EVAL, "candidates": 2, "targets": 2, "positives": 2, "any_positive": 1}
    assert [example] == [e for e, _ in _per_unit([unit], {"a": 4, "z": 0}, {"a": "c1", "b": "c1", "z": "c2"})]


def _edge_units():
    """Units with what the per-unit path handles quietly: a source listing an item twice (the later entry's
    features, the earlier rank in the merge), "" ids, items without a category or a count, non-ASCII ids, an
    empty history, a unit without candidates, repeated and duplicate targets, no user vector."""
    h = [X.Action(0, "a", "click"), X.Action(0, "b", "purchase"), X.Action(2, "a", "purchase"),
         X.Action(2, "상품", "purchase"), X.Action(5, "q", "cart"), X.Action(5, "a", "click")]
    return [
        X.Unit("u1", F.TRAIN, h, ["a", "x", "a"], ["click", "purchase", "purchase"], 7, 70,
               {"graph": (["x", "a", "", "x", "상품"], [0.9, 0.8, 0.0, 0.7, 0.6]),
                "two_tower": (["b", "x", "new"], [2.0, 1.5, 1.25]),
                "student": (["q"], [-0.5]), "repeat": (["a", "b"], [math.log1p(3), math.log1p(1)]),
                "popularity": (["p1", "p2", "x"], [math.log1p(9), math.log1p(7), math.log1p(5)])},
               np.array([0.5, -1.0, 3.0], np.float32)),
        X.Unit("u2", F.EVAL, [], ["n"], ["click"], 0, 5,
               {"graph": (["n", "p1"], [0.1, 0.05]), "popularity": (["p1", "p2"], [math.log1p(9), math.log1p(7)])}),
        X.Unit("u3", F.TEST, h[:2], ["zz"], ["purchase"], 1, 9, {}, np.zeros(3, np.float32)),
        X.Unit("u4", F.TEST, h, ["상품"], ["purchase"], 6, 60,
               {"two_tower": (["상품", "b"], [0.3, 0.2]), "popularity": (["p2"], [math.log1p(7)])}),
        # gaps and times of several varint bytes, a negative timestamp
        X.Unit("u5", F.TRAIN, h + [X.Action(300, "b", "click")], ["a"], ["purchase"], 2 ** 20, -1_700_000_000,
               {"graph": (["a", "b"], [1e-30, -3.5e12])}, np.array([np.inf, -0.0, 1e-40], np.float32)),
    ]


@pytest.mark.parametrize("max_actions", [X.MAX_ACTIONS, 3])
def test_vectorised_rows_equal_the_per_unit_rows_on_edge_cases(max_actions):
    counts = {"a": 3, "b": 1, "x": 5, "p1": 9, "p2": 7, "상품": 2}
    category = {"a": "c1", "b": "c2", "x": "c1", "p1": "c3", "상품": "c2", "q": ""}
    old = _per_unit(_edge_units(), counts, category, max_actions)
    new = _vectorised(_edge_units(), counts, category, max_actions)
    assert [s for _, s in new] == [s for _, s in old]
    assert [_parsed(e) for e, _ in new] == [_parsed(e) for e, _ in old]
    assert [e for e, _ in new] == [e for e, _ in old]  # the serialized bytes too (deterministic order)


def test_vectorised_rows_equal_the_per_unit_rows_on_random_units():
    rng = np.random.default_rng(3)
    catalogue = [f"i{k}" for k in range(40)]
    counts = {i: int(rng.integers(0, 20)) for i in catalogue[:30]}
    category = {i: f"c{rng.integers(0, 4)}" for i in catalogue[5:]}
    units = []
    for u in range(60):
        n_hist = int(rng.integers(0, 25))
        pos = np.sort(rng.integers(0, 8, n_hist)).tolist()
        hist = [X.Action(p, catalogue[rng.integers(0, 40)], str(rng.choice(["click", "purchase", "cart"])))
                for p in pos]
        cands = {}
        for s in X.SOURCES:
            if rng.random() < 0.8:
                ids = [catalogue[k] for k in rng.choice(40, int(rng.integers(0, 15)), replace=False)]
                cands[s] = (ids, rng.normal(size=len(ids)).astype(np.float32).astype(float).tolist())
        targets = [catalogue[k] for k in rng.integers(0, 40, int(rng.integers(1, 4)))]
        units.append(X.Unit(f"u{u}", F.TRAIN, hist, targets, [str(rng.choice(["click", "purchase"])) for _ in targets],
                            (pos[-1] if pos else 0) + int(rng.integers(0, 3)), u, cands,
                            rng.normal(size=4).astype(np.float32)))
    for max_actions in (X.MAX_ACTIONS, 5):
        old = _per_unit(units, counts, category, max_actions)
        new = _vectorised(units, counts, category, max_actions)
        assert [s for _, s in new] == [s for _, s in old]
        assert [e for e, _ in new] == [e for e, _ in old]


class _Signature:
    def __init__(self, fn):
        self._fn = fn

    def __call__(self, **kwargs):
        return self._fn(**{k: v.numpy() for k, v in kwargs.items()})


class _StubRetriever:
    """A retriever SavedModel's signatures over a fixed score table: top-k with exclusions, "" where fewer than k
    items are left (as the brute-force twins answer)."""

    def __init__(self, seed: int, items: list[str]):
        import tensorflow as tf

        rng = np.random.default_rng(seed)
        self.items = np.array([i.encode() for i in items], dtype=object)
        self.table = rng.normal(size=(64, len(items))).astype(np.float32)
        self.vectors = rng.normal(size=(64, 3)).astype(np.float32)

        def top(keys, k, exclude):
            ids, scores = [], []
            for key, kk, ex in zip(keys, k, exclude):
                s = self.table[key % 64].copy()
                s[np.isin(self.items, list(ex))] = -np.inf
                order = [c for c in np.argsort(-s, kind="stable")[:kk] if np.isfinite(s[c])]
                pad = kk - len(order)
                ids.append([self.items[c] for c in order] + [b""] * pad)
                scores.append([s[c] for c in order] + [0.0] * pad)
            return {N.ITEM_IDS: tf.constant(np.array(ids, dtype=object).astype(bytes)),
                    N.SCORES: tf.constant(np.array(scores, np.float32))}

        def key_of_history(h):
            return np.array([sum(len(x) for x in row) + 7 * sum(1 for x in row if x) for row in h])

        def key_of_user(u):
            return np.array([sum(u_) for u_ in (x for x in u)])

        self.signatures = {
            N.SERVING_DEFAULT: _Signature(lambda history, k, exclude: top(key_of_history(history), k, exclude)),
            N.RECOMMEND_ORDERS: _Signature(lambda history, order_pos, k, exclude:
                                           top(key_of_history(history) + order_pos.sum(axis=1), k, exclude)),
            N.RECOMMEND_USER: _Signature(lambda user_id, k, exclude: top(key_of_user(user_id), k, exclude)),
            N.USER_VECTOR: _Signature(lambda user_id: {
                N.EMBEDDING: tf.constant(self.vectors[key_of_user(user_id) % 64])}),
        }


def _user_rows(rng, items: list[str], n_users: int) -> list:
    """``(user_id, [(split, parsed row)])`` per user: one prefix row, two window rows, validation and test."""
    from transform.ranking_window import WINDOW

    batch = []
    for u in range(n_users):
        timeline = [(items[rng.integers(0, len(items))], p) for p in range(12) for _ in range(int(rng.integers(1, 3)))]
        rows = []
        for split, cut in ((F.TRAIN, 4), (WINDOW, 6), (WINDOW, 9), (F.EVAL, len(timeline) - 2),
                           (F.TEST, len(timeline) - 1)):
            r = _row(timeline[cut][1], timeline[max(0, cut - 5) if split == WINDOW else 0:cut], [timeline[cut][0]],
                     [str(rng.choice(["click", "purchase"]))])
            r[F.USER_ID.name] = f"user{u}"
            rows.append((split, r))
        batch.append((f"user{u}", rows))
    return batch


@pytest.mark.parametrize("exclude_history", [True, False])
def test_candidate_fn_vectorised_equals_the_per_unit_path(monkeypatch, exclude_history):
    """``CandidateFn`` end to end (stub retrievers, several chunks, every source): the same records, in order."""
    import tensorflow as tf
    from transform.ranking_window import WINDOW

    items = [f"i{k}" for k in range(25)] + ["상품"]
    stubs = {}

    def load(path):
        return stubs.setdefault(path, _StubRetriever(len(stubs) + 1, items))

    monkeypatch.setattr(tf.saved_model, "load", load)
    rng = np.random.default_rng(0)
    batch = _user_rows(rng, items, 9)
    counts = {i: int(rng.integers(0, 9)) for i in items[:20]}
    category = {i: f"c{k % 3}" for k, i in enumerate(items)}
    out = {}
    for vectorised in (False, True):
        fn = X.CandidateFn(X.RetrieverSet("p_tt", "p_g", counts, "p_s"), X.RetrieverSet("tt", "g", counts, "s"),
                           category, exclude_history=exclude_history, batch_size=4, vectorised=vectorised,
                           top_n={"two_tower": 6, "graph": 7, "student": 5, "repeat": 4, "popularity": 5})
        fn.setup()
        out[vectorised] = [(o.tag, _canonical(o.value) if o.tag != "stats" else o.value) for o in fn.process(batch)]
    assert len(out[True]) == 2 * 9 * 4  # 4 ranked units per user, each a row and its statistics
    assert out[True] == out[False]
    fn = X.CandidateFn(X.RetrieverSet("p_tt", "p_g", counts), X.RetrieverSet("tt", "g", counts), category,
                       exclude_history=exclude_history, batch_size=4)
    fn.setup()
    assert [o.value for o in fn.process(batch) if o.tag != "stats"] == \
        [o.value for o in fn.process(batch) if o.tag != "stats"]  # the vectorised path's bytes are reproducible


def test_varints_are_protobufs():
    import tensorflow as tf

    values = np.array([0, 1, 127, 128, 300, 16383, 16384, 2 ** 35, 2 ** 63 - 1, -1, -300, -(2 ** 63)], np.int64)
    blob, off = X._varints(values)
    assert [blob[off[i]:off[i + 1]] for i in range(len(values))] == [X._varint(int(v)) for v in values]
    packed = tf.train.Int64List(value=values.tolist()).SerializeToString()
    assert packed == b"\n" + X._varint(len(blob)) + blob
    assert X._varints(np.array([0, 1, 5], np.int64)) == (bytes([0, 1, 5]), [0, 1, 2, 3])
    assert X._varints(np.zeros(0, np.int64)) == (b"", [0])


def _user_of(record: bytes) -> str:
    import tensorflow as tf

    return tf.train.Example.FromString(record).features.feature[F.USER_ID.name].bytes_list.value[0].decode()


def _stub_retrievers_and_users(monkeypatch, seed: int, n_users: int) -> tuple[list, dict]:
    """Stub retrievers over 25 items in place of ``tf.saved_model.load``; ``n_users`` users' rows and item counts."""
    import tensorflow as tf

    items = [f"i{k}" for k in range(25)]
    stubs = {}
    monkeypatch.setattr(tf.saved_model, "load",
                        lambda path: stubs.setdefault(path, _StubRetriever(len(stubs) + 1, items)))
    rng = np.random.default_rng(seed)
    users = _user_rows(rng, items, n_users)
    return users, {i: int(rng.integers(0, 9)) for i in items}


def test_sampled_units_are_the_whole_run_s_units_of_the_sampled_users(monkeypatch):
    """``samples`` per unit split: only those users' units are built, each the same record as without a sample
    (the timeline still comes from every row); a split left out keeps every user."""
    batch, counts = _stub_retrievers_and_users(monkeypatch, seed=1, n_users=9)
    category = {f"i{k}": f"c{k % 3}" for k in range(25)}

    def run(samples):
        fn = X.CandidateFn(X.RetrieverSet("p_tt", "p_g", counts), X.RetrieverSet("tt", "g", counts), category,
                           exclude_history=True, batch_size=4, samples=samples)
        fn.setup()
        rows = [(o.tag, o.value) for o in fn.process(batch) if o.tag != "stats"]
        return fn, {(tag, _user_of(v), k): v for k, (tag, v) in enumerate(rows)}

    _, whole = run(None)
    fn, sampled = run({F.TRAIN: frozenset({"user1", "user3"}), F.EVAL: frozenset({"user2", "nobody"})})
    assert fn.needed_users() is None  # test takes every user
    expected = {key[:2] for key in whole if key[0] == F.TEST or (key[0], key[1]) in
                {(F.TRAIN, "user1"), (F.TRAIN, "user3"), (F.EVAL, "user2")}}
    assert sorted({key[:2] for key in sampled}) == sorted(expected)
    assert len([k for k in sampled if k[0] == F.TRAIN]) == 4  # two window units each
    by_unit = {}
    for (tag, user, _), v in whole.items():
        by_unit.setdefault((tag, user), []).append(v)
    for (tag, user, _), v in sampled.items():
        assert v in by_unit[(tag, user)]
    fn, _ = run({F.TRAIN: frozenset({"user1"}), F.EVAL: frozenset({"user2"}), F.TEST: frozenset({"user2"})})
    assert fn.needed_users() == {"user1", "user2"}
    with pytest.raises(ValueError, match="per unit split"):
        X.CandidateFn(X.RetrieverSet("p_tt", "p_g", counts), X.RetrieverSet("tt", "g", counts), category,
                      exclude_history=True, samples={"window": frozenset()})


def _serialized(row: dict) -> bytes:
    """A sequence row as the ranking-window artifact stores it (the features ``parse_row`` reads)."""
    import tensorflow as tf

    def b(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    def i(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    feature = {F.USER_ID.name: b([row[F.USER_ID.name]]), F.HISTORY_ITEM_ID.name: b(row[F.HISTORY_ITEM_ID.name]),
               F.HISTORY_ORDER_POS.name: i(row[F.HISTORY_ORDER_POS.name]),
               F.HISTORY_EVENT_TYPE.name: b(row[F.HISTORY_EVENT_TYPE.name]),
               F.TARGET_ITEM_ID.name: b(row[F.TARGET_ITEM_ID.name]),
               F.TARGET_EVENT_TYPE.name: b(row[F.TARGET_EVENT_TYPE.name]),
               F.TARGET_ORDER_POS.name: i([row[F.TARGET_ORDER_POS.name]]),
               F.TARGET_TIMESTAMP.name: i([row[F.TARGET_TIMESTAMP.name]])}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_row_user_reads_the_user_id_that_parse_row_reads(monkeypatch):
    users, _ = _stub_retrievers_and_users(monkeypatch, seed=2, n_users=3)
    for _, rows in users:
        for _, row in rows:
            b = _serialized(row)
            assert X.row_user(b) == X.parse_row(b)[F.USER_ID.name] == row[F.USER_ID.name]


def test_build_exposures_drops_users_in_no_sample_before_grouping_and_builds_the_sampled_units(monkeypatch):
    """The Beam transform with every split sampled: the rows of users in no sample are dropped on their user id
    before they are parsed (the ``SampledUsers-<split>`` filters), and the units written are the sampled ones, each as without a sample."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    users, counts = _stub_retrievers_and_users(monkeypatch, seed=2, n_users=7)
    by_split: dict = {}
    for _, rows in users:
        for split, row in rows:
            by_split.setdefault(split, []).append(_serialized(row))
    samples = {F.TRAIN: frozenset({"user0", "user5"}), F.EVAL: frozenset({"user5", "user6"}),
               F.TEST: frozenset({"user6"})}

    def fn(s):
        return X.CandidateFn(X.RetrieverSet("p_tt", "p_g", counts), X.RetrieverSet("tt", "g", counts), {},
                             exclude_history=True, batch_size=3, samples=s)

    whole = fn(None)
    whole.setup()
    expected = {}
    for o in whole.process(users):
        if o.tag != "stats" and (o.tag, _user_of(o.value)) in {(s, u) for s, us in samples.items() for u in us}:
            expected.setdefault(o.tag, []).append(_canonical(o.value))
    assert {s: len(v) for s, v in expected.items()} == {F.TRAIN: 4, F.EVAL: 2, F.TEST: 1}
    p = beam.Pipeline()
    reads = {split: p | f"Create-{split}" >> beam.Create(rows) for split, rows in by_split.items()}
    out = reads | X.BuildExposures(fn(samples), users_per_batch=2)
    for split in F.SEQUENCE_SPLITS:
        assert_that(out[split] | f"Canonical-{split}" >> beam.Map(_canonical), equal_to(expected[split]),
                    label=f"Check-{split}")
    labels = [t.unique_name for t in p.to_runner_api().components.transforms.values()]
    assert sum("/SampledUsers-" in label for label in labels) == len(by_split)  # before each split's parse
    p.run().wait_until_finish()
    p = beam.Pipeline()  # a split that takes every user: no filter before the grouping
    _ = {split: p | f"Create-{split}" >> beam.Create(rows) for split, rows in by_split.items()} | X.BuildExposures(
        fn(dict(samples, **{F.TEST: None})))
    assert not any("/SampledUsers" in t.unique_name for t in p.to_runner_api().components.transforms.values())
