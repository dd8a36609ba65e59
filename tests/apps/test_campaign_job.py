"""The campaign Beam job on a tiny stand-in SavedModel and a hand-written Examples artifact.

The stand-in has the generative model's ``recommend_orders`` contract and
returns each user's last distinct history items, most recent first, then the
fixed items ``FALLBACK``, with scores -1, -2, … — enough to check the Beam
plumbing exactly; the real generative model is tested in
``tests/integration/test_campaign.py``.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from recsys import features as F
from transform import examples_io
from apps.campaign import batch_inputs, main, resolve_model_dir, run_campaign, user_histories_from_examples
from transform.sequences import to_example

ORDERS_SPEC = [tf.TensorSpec([None, None], tf.string, name="history"),
               tf.TensorSpec([None, None], tf.int64, name="order_pos"),
               tf.TensorSpec([None], tf.int32, name="k"),
               tf.TensorSpec([None, None], tf.string, name="exclude")]
HISTORY_SPEC = [tf.TensorSpec([None, None], tf.string, name="history")]

FALLBACK = ["p1", "p2", "p3"]  # recommended after the history items

# (user, items oldest first, order positions)
USERS = [("u1", ["a", "b", "c", "d"], [0, 0, 1, 2]),
         ("u2", ["x", "y", "x", "z", "y"], [0, 1, 2, 2, 3]),
         ("u3", ["a", "a"], [0, 1]),
         ("u4", ["d", "e", "f"], [0, 1, 2]),
         ("u5", ["q"], [0])]


def _last_distinct(history, order_pos, k, exclude):
    """Stand-in ranking: per row, the history (most recent first) then ``FALLBACK``, distinct, not excluded,
    cut to max(k) and padded with ""."""
    tf.debugging.assert_equal(tf.shape(order_pos), tf.shape(history), message="order_pos must match history")
    width = tf.reduce_max(k)

    def row(args):
        items, excluded = args
        items = tf.concat([tf.reverse(items, [0]), tf.constant(FALLBACK)], axis=0)
        keep = (items != "") & ~tf.reduce_any(items[:, None] == excluded[None, :], axis=1)
        items = tf.unique(tf.boolean_mask(items, keep)).y[:width]
        return tf.pad(items, [[0, width - tf.shape(items)[0]]], constant_values="")

    ids = tf.map_fn(row, (history, exclude), fn_output_signature=tf.TensorSpec([None], tf.string))
    ranks = -tf.cast(tf.range(1, width + 1), tf.float32)[None]
    return {"item_ids": ids, "scores": tf.where(ids != "", ranks, float("-inf"))}


class Generative(tf.Module):
    @tf.function(input_signature=ORDERS_SPEC)
    def recommend_orders(self, history, order_pos, k, exclude):
        return _last_distinct(history, order_pos, k, exclude)


class RetrievalLike(Generative):
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="content")])
    def embed_content(self, content):
        return {"embedding": content}


class HistoryOnly(tf.Module):
    @tf.function(input_signature=HISTORY_SPEC)
    def recommend_history(self, history):
        return {"item_ids": history}


class OtherOrdersContract(tf.Module):
    @tf.function(input_signature=HISTORY_SPEC)
    def recommend_orders(self, history):
        return {"item_ids": history}


def _save(module: tf.Module, path: str, *names: str) -> str:
    """Saves ``module`` with the named methods as signatures; the first is also ``serving_default``."""
    signatures = {n: getattr(module, n) for n in names}
    tf.saved_model.save(module, path, signatures={"serving_default": signatures[names[0]], **signatures})
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "generative": _save(Generative(), str(root / "generative"), "recommend_orders"),
        "retrieval": _save(RetrievalLike(), str(root / "retrieval"), "recommend_orders", "embed_content"),
        "history_only": _save(HistoryOnly(), str(root / "history_only"), "recommend_history"),
        "other_contract": _save(OtherOrdersContract(), str(root / "other_contract"), "recommend_orders"),
    }


def _expected(items: list[str], top_n: int) -> list[str]:
    """What the stand-in returns for one user's history (nothing excluded), "" padding dropped."""
    out: list[str] = []
    for item in list(reversed(items)) + FALLBACK:
        if item not in out:
            out.append(item)
    return out[:top_n]


def _read(paths: list[str]) -> list[dict]:
    return [json.loads(line) for path in paths for line in open(path)]


def test_batch_inputs_pad_histories_positions_and_exclusions():
    batch = [("u1", ["a", "b", "c"], [0, 0, 1]), ("u2", ["x"], [4])]
    got = batch_inputs(batch, top_n=3, exclude_history=False)
    assert got["history"].tolist() == [["a", "b", "c"], ["x", "", ""]]
    assert got["order_pos"].dtype == np.int64 and got["order_pos"].tolist() == [[0, 0, 1], [4, 0, 0]]
    assert got["k"].dtype == np.int32 and got["k"].tolist() == [3, 3]
    assert got["exclude"].tolist() == [[""], [""]]
    assert batch_inputs(batch, 3, exclude_history=True)["exclude"].tolist() == got["history"].tolist()
    assert batch_inputs([("u", [], [])], 1, False)["history"].tolist() == [[""]]


def test_one_line_per_user_with_the_model_items_and_scores(models, tmp_path, capsys):
    [path] = run_campaign(models["generative"], USERS, str(tmp_path / "out" / "next"), top_n=5, batch_size=2)
    assert path == str(tmp_path / "out" / "next.jsonl")
    lines = _read([path])
    assert sorted(r["user_id"] for r in lines) == [u for u, _, _ in USERS]
    by_user = {r["user_id"]: r for r in lines}
    for user, items, _ in USERS:
        want = _expected(items, 5)
        assert by_user[user] == {"user_id": user, "items": want,
                                 "log_likelihoods": [-float(i) for i in range(1, len(want) + 1)]}
    assert by_user["u3"]["items"] == ["a", "p1", "p2", "p3"]  # "" padding dropped
    out = capsys.readouterr().out
    assert "[campaign] 5 users" in out and f"[campaign] wrote {path}: 5 users, 0 without items" in out


def test_exclude_history_and_users_left_without_items(models, tmp_path, capsys):
    users = USERS + [("u6", ["p1", "p3"], [0, 1]), ("u7", FALLBACK, [0, 0, 0])]
    [path] = run_campaign(models["generative"], users, str(tmp_path / "next.jsonl"), top_n=2,
                          exclude_history=True)
    assert path == str(tmp_path / "next.jsonl")
    got = {r["user_id"]: (r["items"], r["log_likelihoods"]) for r in _read([path])}
    assert got == {**{u: (["p1", "p2"], [-1.0, -2.0]) for u, _, _ in USERS},
                   "u6": (["p2"], [-1.0]), "u7": ([], [])}
    assert "7 users, 1 without items" in capsys.readouterr().out


def test_sharded_output(models, tmp_path):
    paths = run_campaign(models["generative"], USERS, str(tmp_path / "next"), top_n=1, num_shards=2)
    assert [os.path.basename(p) for p in paths] == ["next-00000-of-00002.jsonl", "next-00001-of-00002.jsonl"]
    assert sorted(r["user_id"] for r in _read(paths)) == [u for u, _, _ in USERS]


@pytest.mark.parametrize("kwargs, message", [
    ({"top_n": 0}, "top_n must be at least 1, got 0"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"num_shards": 0}, "num_shards must be at least 1"),
    ({"users": []}, "no users"),
    ({"users": [("u1", ["a", "b"], [0])]}, "user 'u1' has 2 items but 1 order positions"),
])
def test_bad_arguments_are_refused(models, tmp_path, kwargs, message):
    args = {"model_dir": models["generative"], "users": USERS, "output_path": str(tmp_path / "x"), **kwargs}
    with pytest.raises(ValueError, match=message):
        run_campaign(**args)


def test_models_without_the_generative_contract_are_refused(models, tmp_path):
    missing = r"no 'recommend_orders' signature.*\(its signatures: \['recommend_history', 'serving_default'\]\)"
    with pytest.raises(ValueError, match=missing):
        run_campaign(models["history_only"], USERS, str(tmp_path / "x"))
    retrieval = r"not the generative model.*\['embed_content', 'recommend_orders', 'serving_default'\]"
    with pytest.raises(ValueError, match=retrieval):
        run_campaign(models["retrieval"], USERS, str(tmp_path / "x"))
    with pytest.raises(ValueError, match=r"'recommend_orders' takes \['history'\] and returns \['item_ids'\]"):
        run_campaign(models["other_contract"], USERS, str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_campaign(str(tmp_path / "missing"), USERS, str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError, match="no numbered version"):
        resolve_model_dir(str(tmp_path))
    assert not list(tmp_path.glob("x*"))


# --- Examples artifact --------------------------------------------------------------------------------

def _row(user, history, history_pos, targets, target_pos, ts):
    return {F.USER_ID.name: user, F.HISTORY_ITEM_ID.name: history, F.HISTORY_ORDER_POS.name: history_pos,
            F.HISTORY_EVENT_TYPE.name: ["purchase"] * len(history), F.TARGET_ITEM_ID.name: targets,
            F.TARGET_CATEGORY.name: [""] * len(targets), F.TARGET_EVENT_TYPE.name: ["purchase"] * len(targets),
            F.TARGET_ORDER_POS.name: target_pos,
            F.TARGET_TIMESTAMP.name: ts}


# "u2" has a row in every split; "u1" only training rows, its most recent one written first
ROWS = {
    F.TRAIN: [_row("u2", ["a"], [0], ["b"], 1, 10), _row("u2", ["a", "b"], [0, 1], ["c", "d"], 2, 20),
              _row("u1", ["x"], [0], ["y", "w"], 1, 50), _row("u1", ["x"], [0], ["z"], 1, 5)],
    F.EVAL: [_row("u2", ["a", "b", "c", "d"], [0, 1, 2, 2], ["e"], 3, 30)],
    F.TEST: [_row("u2", ["a", "b", "c", "d", "e"], [0, 1, 2, 2, 3], ["a", "f"], 4, 40)],
}
LATEST = [("u1", ["x", "y", "w"], [0, 1, 1]), ("u2", ["a", "b", "c", "d", "e", "a", "f"], [0, 1, 2, 2, 3, 4, 4])]


@pytest.fixture
def examples(tmp_path):
    uri = tmp_path / "examples"
    for split, rows in ROWS.items():
        os.makedirs(uri / f"Split-{split}")
        with tf.io.TFRecordWriter(str(uri / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz"), "GZIP") as w:
            for row in rows:
                w.write(to_example(row, F.SEQUENCE_FEATURES).SerializeToString())
    return str(uri)


def test_user_histories_from_examples(examples):
    got = user_histories_from_examples(examples)
    assert got == LATEST
    assert {u: (items, pos) for u, items, pos in got} == {
        u: (h.items, h.order_pos) for u, h in examples_io.latest_histories(examples).items()}


def test_main_uses_the_highest_model_version(models, examples, tmp_path, capsys):
    base = tmp_path / "generative"
    _save(HistoryOnly(), str(base / "9"), "recommend_history")  # "9" > "10": a string sort would pick it
    _save(Generative(), str(base / "10"), "recommend_orders")
    (base / "11").mkdir()  # a version still being written (no saved_model.pb) is skipped
    assert resolve_model_dir(str(base)) == str(base / "10")
    assert resolve_model_dir(str(base / "9")) == str(base / "9")

    out = tmp_path / "campaign" / "next"
    assert main(["--model-dir", str(base), "--examples", examples, "--output", str(out), "--top-n", "2",
                 "--", "--direct_running_mode=in_memory", "--direct_num_workers=1"]) == 0
    assert sorted(_read([str(out) + ".jsonl"]), key=lambda r: r["user_id"]) == [
        {"user_id": u, "items": _expected(items, 2), "log_likelihoods": [-1.0, -2.0]} for u, items, _ in LATEST]
    assert f"from {base / '10'}" in capsys.readouterr().out
