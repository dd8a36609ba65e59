"""export.evaluate's user sample (issue 14): every field of the split's rows restricted to the same users."""
import numpy as np

from export import evaluate
from transform.examples_io import SequenceRows


def test_select_rows_keeps_every_field_of_the_chosen_rows():
    rows = SequenceRows(user_ids=["a", "b", "c", "d"], histories=[["1"], ["2"], ["3"], ["4"]],
                        targets=[["t1"], ["t2"], ["t3"], ["t4"]], target_timestamps=np.array([10, 20, 30, 40]),
                        history_order_pos=[[0], [1], [2], [3]], target_order_pos=np.array([5, 6, 7, 8]),
                        target_event_types=[["click"], ["cart"], ["like"], ["purchase"]],
                        history_event_types=[["x"], ["y"], ["z"], ["w"]])
    got = evaluate._select_rows(rows, np.array([1, 3]))
    assert got.user_ids == ["b", "d"] and got.histories == [["2"], ["4"]] and got.targets == [["t2"], ["t4"]]
    assert got.target_timestamps.tolist() == [20, 40] and got.target_order_pos.tolist() == [6, 8]
    assert got.history_order_pos == [[1], [3]] and got.target_event_types == [["cart"], ["purchase"]]
    assert got.history_event_types == [["y"], ["w"]]


def test_every_model_of_an_evaluator_is_asked_for_the_sampled_users_only(monkeypatch):
    """The DualHeadEvaluator's beam search (its ``generative`` SavedModel) runs on the ``--eval-users`` sample like
    every other model: ``evaluate_split`` narrows the rows before any model is asked (issue 14)."""
    from recsys.evaluation import metrics
    from transform import examples_io

    users = [f"u{k}" for k in range(30)]
    rows = SequenceRows(user_ids=users, histories=[["a"]] * 30, targets=[["b"]] * 30,
                        target_timestamps=np.arange(30), history_order_pos=[[0]] * 30,
                        target_order_pos=np.ones(30, np.int64), target_event_types=[["purchase"]] * 30,
                        history_event_types=[["click"]] * 30)
    catalog = examples_io.Catalog(np.array(["a", "b"], dtype=object), np.array(["c", "c"], dtype=object),
                                  np.zeros(2, np.int64), np.array(["", ""], dtype=object), np.full(2, np.nan))
    monkeypatch.setattr(examples_io, "read_catalog", lambda uri: catalog)
    monkeypatch.setattr(examples_io, "read_rows", lambda uri, split: rows)
    asked = {}

    batches = {}

    def topk(model_dir, histories, masked, pos, k, order_pos=None, user_ids=None, batch_size=None):
        asked.setdefault(model_dir, []).append(len(histories))
        batches.setdefault(model_dir, set()).add(batch_size)
        return np.zeros((len(histories), k), np.int64)

    monkeypatch.setattr(evaluate, "saved_model_topk", topk)
    out = evaluate.evaluate_split("uri", "eval", evaluate.LEAVE_ONE_OUT,
                                  {"dual_retrieval": "/s", "generative": "/g"}, baselines=False, sample_users=7,
                                  progress=lambda m: None, batch_sizes={"generative": 3})
    assert asked == {"/s": [7, 7], "/g": [7, 7]}  # masked and unmasked, 7 of the 30 users each time
    assert batches == {"/s": {evaluate.BATCH_SIZE}, "/g": {3}}
    assert out["generative"]["users evaluated"] == 7 and out["generative"]["users in split"] == 30
    assert len(metrics.sample_rows(users, 7)) == 7


def test_generative_calls_keep_their_catalogue_tables_bounded():
    """[requests, items] tables a call: 256 requests up to 262,144 items (MovieLens' and Instacart's calls as
    before), 67 at 1M items, never fewer than 1."""
    assert evaluate.beam_batch_size(1_682) == evaluate.beam_batch_size(14_190) == 256
    assert evaluate.beam_batch_size(262_144) == 256 and evaluate.beam_batch_size(262_145) == 255
    assert evaluate.beam_batch_size(1_000_000) == 67
    assert 67 * 1_000_000 <= evaluate.BEAM_CALL_CELLS < 68 * 1_000_000
    assert evaluate.beam_batch_size(10 ** 9) == 1
