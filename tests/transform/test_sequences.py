"""Exact tests of the per-user sequence builder and the time-based split."""
import pytest

from recsys import features as F
from transform.sequences import (
    LEAVE_LAST_ORDER_OUT, LEAVE_ONE_OUT, Event, build_user_rows, order_positions, to_example)


def ev(t, item, order="", kind="purchase", seq=None):
    return Event(t, item, kind, order, t if seq is None else seq)


def test_order_positions_share_one_position_per_order():
    events = [ev(1, "a", "o1"), ev(2, "b", "o1"), ev(3, "c"), ev(4, "d", "o2"), ev(5, "e", "o2"), ev(6, "f")]
    assert order_positions(events) == [0, 0, 1, 2, 2, 3]


def test_leave_one_out_split_last_is_test_second_last_is_eval():
    events = [ev(t, f"i{t}", kind="click" if t % 2 else "purchase") for t in range(1, 7)]  # i1..i6
    rows = build_user_rows("u", events, {"i6": "c6"}, LEAVE_ONE_OUT, max_history=2)
    # the first interaction has no history, so it is never a target
    assert [s for s, _ in rows] == [F.TRAIN, F.TRAIN, F.TRAIN, F.EVAL, F.TEST]
    by_split = [r for _, r in rows]
    # training rows are cut to max_history=2, eval/test rows keep the full history
    assert by_split[2][F.HISTORY_ITEM_ID.name] == ["i2", "i3"]
    assert by_split[2][F.TARGET_ITEM_ID.name] == ["i4"]
    assert by_split[3][F.HISTORY_ITEM_ID.name] == ["i1", "i2", "i3", "i4"]
    assert by_split[3][F.TARGET_ITEM_ID.name] == ["i5"]
    assert by_split[4][F.HISTORY_ITEM_ID.name] == ["i1", "i2", "i3", "i4", "i5"]
    assert by_split[4][F.TARGET_ITEM_ID.name] == ["i6"]
    assert by_split[4][F.TARGET_CATEGORY.name] == ["c6"]
    assert by_split[4][F.HISTORY_EVENT_TYPE.name] == ["click", "purchase", "click", "purchase", "click"]


def test_leave_last_order_out_targets_whole_baskets_and_history_is_previous_orders():
    events = [ev(10, "a", "o1"), ev(11, "b", "o1"), ev(20, "c", "o2"), ev(30, "a", "o3"), ev(31, "d", "o3"),
              ev(40, "e", "o4"), ev(41, "a", "o4")]
    rows = build_user_rows("u", events, {}, LEAVE_LAST_ORDER_OUT)
    assert [s for s, _ in rows] == [F.TRAIN, F.EVAL, F.TEST]
    test = rows[2][1]
    assert test[F.TARGET_ITEM_ID.name] == ["e", "a"]  # repeat purchase of "a" kept
    assert test[F.HISTORY_ITEM_ID.name] == ["a", "b", "c", "a", "d"]
    assert test[F.HISTORY_ORDER_POS.name] == [0, 0, 1, 2, 2]
    assert test[F.TARGET_ORDER_POS.name] == 3
    assert rows[0][1][F.TARGET_ITEM_ID.name] == ["c"]


def test_targets_carry_their_strongest_behaviour():
    events = [ev(10, "a", "o1", "click"), ev(20, "b", "o2", "click"), ev(21, "c", "o2", "cart"),
              ev(22, "b", "o2", "purchase"), ev(23, "b", "o2", "like")]
    rows = build_user_rows("u", events, {}, LEAVE_LAST_ORDER_OUT)
    assert rows[0][1][F.TARGET_ITEM_ID.name] == ["b", "c"]
    assert rows[0][1][F.TARGET_EVENT_TYPE.name] == ["purchase", "cart"]  # b: click, purchase, like -> purchase


def test_impressions_never_enter_sequences_and_short_users_are_train_only():
    events = [ev(1, "a", kind="impression"), ev(2, "b", kind="click"), ev(3, "c", kind="cart")]
    rows = build_user_rows("u", events, {}, LEAVE_ONE_OUT)
    assert [s for s, _ in rows] == [F.TRAIN]
    assert rows[0][1][F.HISTORY_ITEM_ID.name] == ["b"]


def test_unknown_protocol_is_rejected():
    with pytest.raises(ValueError, match="protocol"):
        build_user_rows("u", [ev(1, "a"), ev(2, "b")], {}, "random")


def test_to_example_round_trips_through_the_registry_spec():
    import tensorflow as tf

    rows = build_user_rows("u7", [ev(1, "a", "o"), ev(2, "b", "o"), ev(3, "c")], {"c": "x > y"}, LEAVE_ONE_OUT)
    serialized = to_example(rows[-1][1], F.SEQUENCE_FEATURES).SerializeToString()
    parsed = tf.io.parse_single_example(serialized, F.feature_spec(F.SEQUENCE_FEATURES))
    assert parsed[F.USER_ID.name].numpy() == b"u7"
    assert tf.sparse.to_dense(parsed[F.HISTORY_ITEM_ID.name]).numpy().tolist() == [b"a", b"b"]
    assert tf.sparse.to_dense(parsed[F.HISTORY_ORDER_POS.name]).numpy().tolist() == [0, 0]
    assert parsed[F.TARGET_ORDER_POS.name].numpy() == 1


def test_events_are_ordered_by_seq_not_by_time_or_item_id():
    """Ties in time keep the canonical (file) order carried in ``seq``, whatever order the events arrive in."""
    events = [ev(5, "9", seq=2), ev(5, "10", seq=3), ev(1, "a", seq=0), ev(5, "b", seq=1)]
    rows = build_user_rows("u", events, {}, LEAVE_ONE_OUT)
    test = [r for s, r in rows if s == F.TEST][0]
    assert test[F.HISTORY_ITEM_ID.name] == ["a", "b", "9"]
    assert test[F.TARGET_ITEM_ID.name] == ["10"]  # the old (time, item id) rule would have picked "b"


def test_beam_sequences_follow_file_order_of_a_tiny_file_with_ties(tmp_path):
    """Through Beam (GroupByKey shuffles values) on a tiny MovieLens-format file with ties."""
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.testing.util import assert_that, equal_to

    from recsys.data import load_dataset
    from transform.sequences import BuildSequenceRows

    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t30\t4\t100\n1\t20\t4\t200\n2\t20\t4\t300\n1\t10\t4\t200\n1\t5\t4\t200\n"
        "2\t10\t4\t300\n2\t30\t4\t300\n2\t5\t4\t100\n", encoding="utf-8")
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "".join(f"{i}\tM{i}\t1990\tDrama\n" for i in (5, 10, 20, 30)), encoding="utf-8")
    ds = load_dataset("movielens-100k", str(tmp_path))
    ev = ds.events
    records = [(u, Event(int(t), i, "purchase", "", int(seq)))
               for seq, u, i, t in zip(ev.index, ev["user_id"], ev["item_id"], ev["timestamp"])]

    def decode(serialized):
        ex = tf.train.Example.FromString(serialized).features.feature
        return (ex["user_id"].bytes_list.value[0].decode(),
                tuple(v.decode() for v in ex["history_item_id"].bytes_list.value),
                ex["target_item_id"].bytes_list.value[0].decode())

    with beam.Pipeline() as p:
        rows = (p | beam.Create(list(reversed(records))) | BuildSequenceRows({}, LEAVE_ONE_OUT, 50))
        assert_that(rows[F.TEST] | "dt" >> beam.Map(decode), equal_to(
            [("1", ("30", "20", "10"), "5"), ("2", ("5", "20", "10"), "30")]), label="test")
        assert_that(rows[F.EVAL] | "de" >> beam.Map(decode), equal_to(
            [("1", ("30", "20"), "10"), ("2", ("5", "20"), "10")]), label="eval")
