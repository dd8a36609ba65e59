"""`recsys run`'s pre-flight check of generated data runs shard by shard, with the whole-frame check's verdict."""
import dataclasses

import pytest

from apps import cli
from recsys.data import load_dataset, synthetic
from recsys.data.contract import DataValidationError, check_trainable


def _whole_frame_verdict(options, max_users):
    """What ``_too_small`` answered before: ``check_trainable`` on the loaded dataset (sliced)."""
    ds = load_dataset("synthetic", **options)
    if max_users:
        keep = set(sorted(ds.events["user_id"].unique())[:max_users])
        ds = dataclasses.replace(ds, events=ds.events[ds.events["user_id"].isin(keep)])
    try:
        check_trainable(ds, batch_size=1024)
    except DataValidationError as e:
        return str(e)
    return ""


@pytest.mark.parametrize("options,max_users,trains", [
    ({"n_users": 300, "n_items": 200, "n_events": 6000, "seed": 2}, 0, True),
    ({"n_users": 300, "n_items": 200, "n_events": 6000, "seed": 2}, 30, False),
    ({"n_users": 30, "n_items": 50, "n_events": 200, "seed": 0}, 0, False),
])
def test_synthetic_data_is_checked_shard_by_shard(monkeypatch, options, max_users, trains):
    monkeypatch.setattr(synthetic, "SHARD_EVENTS", 500)  # several shards
    want = _whole_frame_verdict(options, max_users)
    assert (want == "") is trains
    import recsys.data

    def no_whole_load(*args, **kwargs):
        raise AssertionError("the check loaded every event")

    monkeypatch.setattr(recsys.data, "load_dataset", no_whole_load)
    assert cli._too_small("synthetic", "", options, max_users) == want
    if not trains:
        assert want.startswith("synthetic: too little data to train: the time split gives ")
