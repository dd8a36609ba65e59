"""The ranking window: exact splits of tiny users, and no window unit left in the prefix (no leakage)."""
import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from recsys import features as F
from transform import ranking_window as RW
from transform.sequences import to_example


def _row(user: str, pos: int) -> bytes:
    return to_example({
        F.USER_ID.name: user, F.HISTORY_ITEM_ID.name: [f"i{p}" for p in range(pos)],
        F.HISTORY_ORDER_POS.name: list(range(pos)), F.HISTORY_EVENT_TYPE.name: ["purchase"] * pos,
        F.TARGET_ITEM_ID.name: [f"i{pos}"], F.TARGET_CATEGORY.name: [""], F.TARGET_EVENT_TYPE.name: ["purchase"],
        F.TARGET_ORDER_POS.name: pos, F.TARGET_TIMESTAMP.name: pos}, F.SEQUENCE_FEATURES).SerializeToString()


def test_units_sharing_an_order_position_are_ordered_by_time_then_history():
    same_day = [_row("u", 0), _row("u", 0)]
    assert RW._key(same_day[0])[1][0] == (0, 0, 0)
    late = to_example({**_parse(_row("u", 3)), F.TARGET_ORDER_POS.name: 0}, F.SEQUENCE_FEATURES).SerializeToString()
    assert RW._key(late)[1][0] == (0, 3, 3)  # same order position, later timestamp and longer history


def _parse(b):
    from transform.exposures import parse_row
    r = parse_row(b)
    r[F.TARGET_CATEGORY.name] = [""] * len(r[F.TARGET_ITEM_ID.name])
    return r


def test_split_window_keeps_the_last_units_and_one_prefix_unit():
    rows = [(3, b"c"), (1, b"a"), (4, b"d"), (2, b"b")]
    assert RW.split_window(rows, 2) == ([b"a", b"b"], [b"c", b"d"])
    assert RW.split_window(rows, 10) == ([b"a"], [b"b", b"c", b"d"])  # one unit always stays in the prefix
    assert RW.split_window([(1, b"a")], 3) == ([b"a"], [])
    with pytest.raises(ValueError, match="at least one unit"):
        RW.split_window(rows, 0)


def test_beam_split_has_no_window_unit_in_the_prefix():
    rows = [_row("u1", p) for p in range(1, 7)] + [_row("u2", p) for p in (1, 2)]
    with beam.Pipeline() as p:
        out = p | beam.Create(rows) | RW.SplitRankingWindow(window=3)

        def unit(pc, label):  # (user, target order position): serialized bytes need not be identical
            return pc | label >> beam.Map(lambda b: (RW._key(b)[0], RW._key(b)[1][0][0]))

        assert_that(unit(out[F.TRAIN], "P"), equal_to([("u1", 1), ("u1", 2), ("u1", 3), ("u2", 1)]), label="prefix")
        assert_that(unit(out[RW.WINDOW], "W"), equal_to([("u1", 4), ("u1", 5), ("u1", 6), ("u2", 2)]), label="window")
