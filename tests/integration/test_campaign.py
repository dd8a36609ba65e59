"""The campaign batch job (Beam) over the real slice's users with the generative model as pushed.

The model comes from the ``deployed`` fixture (the exporter's output pushed whatever the gate said),
so this does not depend on the short training passing the generative gate.
"""
import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_campaign_writes_one_line_per_user_matching_the_model(ml_slice, deployed, tmp_path):
    import tensorflow as tf

    from apps.campaign import resolve_model_dir, run_campaign, user_histories_from_examples

    examples = ml_slice.uri("SequenceExampleGen", "examples")
    users = user_histories_from_examples(examples)
    assert len(users) == 40 and users == sorted(users)
    user, items, positions = users[0]
    assert len(items) == len(positions) and positions == sorted(positions)

    model_dir = os.path.join(deployed.serving_dir, "generative")
    [path] = run_campaign(model_dir, users, str(tmp_path / "next"), top_n=3, batch_size=16)
    lines = [json.loads(line) for line in open(path)]
    assert [r["user_id"] for r in sorted(lines, key=lambda r: r["user_id"])] == [u for u, _, _ in users]
    got = next(r for r in lines if r["user_id"] == user)
    fn = tf.saved_model.load(resolve_model_dir(model_dir)).signatures["recommend_orders"]
    want = fn(history=tf.constant([items]), order_pos=tf.constant([positions], tf.int64), k=tf.constant([3]),
              exclude=tf.constant([[""]]))
    assert got["items"] == want["item_ids"].numpy().astype(str)[0].tolist()
    np.testing.assert_allclose(got["log_likelihoods"], want["scores"].numpy()[0], atol=1e-4)

    [path] = run_campaign(model_dir, users[:5], str(tmp_path / "excl"), top_n=3, exclude_history=True)
    by_user = {r["user_id"]: r["items"] for r in map(json.loads, open(path))}
    assert len(by_user) == 5
    for u, hist, _ in users[:5]:
        assert len(by_user[u]) == 3 and not set(by_user[u]) & set(hist)


def test_campaign_refuses_a_retrieval_model_and_bad_arguments(deployed, tmp_path):
    from apps.campaign import run_campaign

    layout = deployed
    users = [("u", ["50"], [0])]
    with pytest.raises(ValueError, match="not the generative model"):
        run_campaign(os.path.join(layout.serving_dir, "dual_retrieval_bruteforce"), users, str(tmp_path / "x"))
    with pytest.raises(ValueError, match="top_n"):
        run_campaign(os.path.join(layout.serving_dir, "generative"), users, str(tmp_path / "x"), top_n=0)
    with pytest.raises(ValueError, match="no users"):
        run_campaign(os.path.join(layout.serving_dir, "generative"), [], str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError):
        run_campaign(str(tmp_path / "missing"), users, str(tmp_path / "x"))
