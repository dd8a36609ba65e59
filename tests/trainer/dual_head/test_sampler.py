"""PairSampler: the targets' sampling law, positives, and where hard negatives come from."""
import numpy as np

from trainer import dual_head as D

from .helpers import SMALL, make_data, make_items


def test_debiased_law_is_inverse_sqrt_frequency_and_plain_epochs_are_permutations():
    items = make_items()
    data = make_data(items)
    sampler = D.PairSampler(data, items, D.DualHeadConfig(**SMALL))
    counts = np.bincount(sampler.pair_target, minlength=items.num_items)
    w = 1.0 / np.sqrt(counts[sampler.pair_target])
    np.testing.assert_allclose(sampler.pair_prob, w / w.sum())
    q = np.bincount(sampler.pair_target, weights=w / w.sum(), minlength=items.num_items)
    np.testing.assert_allclose(sampler.log_q[q > 0], np.log(q[q > 0]), rtol=1e-6)
    plain = D.PairSampler(data, items, D.DualHeadConfig(**dict(SMALL, debias_targets=False)))
    assert sorted(plain.epoch().tolist()) == list(range(len(plain.pair_target)))


def test_hard_negatives_come_from_the_targets_category_and_the_users_history_never_a_positive():
    items = make_items()
    data = make_data(items)
    cfg = D.DualHeadConfig(**dict(SMALL, hard_negatives_category=2, hard_negatives_history=1))
    sampler = D.PairSampler(data, items, cfg)
    targets = set(sampler.pair_target.tolist())
    kept = np.zeros(3, int)
    for _ in range(30):
        pairs = sampler.epoch()[:cfg.batch_size]
        b = sampler.batch(pairs)
        rows = sampler.pair_row[pairs]
        assert b["hard"].shape == (cfg.batch_size, 3)
        np.testing.assert_array_equal(b["history"], data.history[rows])
        for i, r in enumerate(rows.tolist()):
            anchor, positives = int(b["anchor"][i]), set(data.positives[r].tolist())
            assert b["positives"][i, 0] == anchor and set(b["positives"][i].tolist()) - {-1} == positives
            own = set(data.history[r][data.history[r] < items.num_items].tolist())
            for j, h in enumerate(b["hard"][i].tolist()):
                if h == items.pad:  # removed
                    continue
                kept[j] += 1
                assert h not in positives
                if j < 2:  # the target's category, among items that are training targets
                    assert items.category[h] == items.category[anchor] and h in targets
                else:      # the user's own history
                    assert h in own
    assert (kept > 0).all()  # every column does produce hard negatives


def test_a_hard_negative_that_is_a_positive_is_removed_and_only_then():
    items = make_items()  # categories: item j % 3
    pad = items.pad
    history = np.array([[0, 3, pad], [1, 4, pad]], np.int32)
    # row 0: history = its positives, category 0's targets = {0, 3} = its positives: everything removed
    # row 1: history holds no positive; category 2's targets = {2, 5, 8}, of which 2 is the row's positive
    positives = [np.array([0, 3]), np.array([2])]
    extra = np.array([[5, pad, pad], [8, pad, pad]], np.int32)  # rows that only make 5 and 8 targets
    data = D.SequenceData(np.concatenate([history, extra]), np.ones((4, 3), np.int32), np.zeros((4, 3), np.int32),
                          positives + [np.array([5]), np.array([8])], [h[h < pad] for h in history] + [[], []],
                          ["u0", "u1", "u2", "u3"])
    sampler = D.PairSampler(data, items, D.DualHeadConfig(**dict(SMALL, max_history=3)))
    row0, row1 = np.flatnonzero(sampler.pair_row == 0), np.flatnonzero(sampler.pair_row == 1)
    seen = set()
    for _ in range(40):
        b = sampler.batch(np.concatenate([row0, row1]))
        assert b["hard"][:2].tolist() == [[pad, pad], [pad, pad]]
        category, own = b["hard"][2].tolist()
        assert category in (pad, 5, 8) and own in (1, 4)
        seen.add(category)
    assert seen == {pad, 5, 8}  # 2 was drawn and removed, 5 and 8 kept
