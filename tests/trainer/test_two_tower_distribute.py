"""The two-tower under tf.distribute: two logical CPU devices (mirrored) and two worker processes (multiworker,
an integration test) train exactly as one device does."""
import numpy as np
import pytest

from trainer import distribute, two_tower

_TRAIN = """
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from trainer import base, two_tower

    def arrays(n_items=20, n=256, seed=0):  # histories of consecutive items, the next one as target
        rng = np.random.default_rng(seed)
        last = rng.integers(0, n_items, n)
        hist = np.stack([(last - 2) % n_items, (last - 1) % n_items, last], axis=1).astype(np.int32)
        target = ((last + 1) % n_items).astype(np.int32)
        pop = np.bincount(target, minlength=n_items)[target].astype(np.float32)
        return base.SequenceArrays(hist, target, (target % 2).astype(np.int32), np.ones(n, np.float32), pop,
                                   np.arange(n, dtype=np.int32))

    data = arrays()
    result = {}
    initial = None
    for name in ("none", "mirrored"):
        config = two_tower.TwoTowerConfig(embedding_dim=8, hidden_dim=16, max_history=3, epochs=2, batch_size=64,
                                          learning_rate=0.01, distribution_strategy=name)
        tf.keras.utils.set_random_seed(0)
        model = two_tower.compiled_model(20, 2, config)
        with model.distribute_strategy.scope():  # build the variables, then start from the same weights
            model.query_tower(tf.constant(data.history[:1]))
            model.item_tower(tf.constant(data.target[:1]), tf.constant(data.target_category[:1]))
        if initial is None:
            initial = model.get_weights()
        model.set_weights(initial)

        losses = []  # the whole training set's loss after every epoch, one batch on one device
        everything = next(iter(two_tower._dataset(data, len(data.target), 0, False, logq_correction=True)))
        class EpochLoss(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                losses.append(float(model.compute_loss(everything)))
        model.fit(two_tower._dataset(data, config.batch_size, config.seed, True, logq_correction=True),
                  epochs=config.epochs, verbose=0, callbacks=[EpochLoss()])
        result[name] = {"replicas": model.distribute_strategy.num_replicas_in_sync, "losses": losses,
                        "weights": [w.tolist() for w in model.get_weights()]}
"""


def test_mirrored_on_two_cpu_devices_gives_the_single_device_losses_and_weights(fresh_process):
    got = fresh_process(_TRAIN, timeout=120)
    one, two = got["none"], got["mirrored"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["losses"][-1] < one["losses"][0]  # it trained
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)  # float32 sums in another order


def test_gather_replicas_is_the_identity_on_one_device():
    import tensorflow as tf

    x = tf.constant([[1.0], [2.0]])
    assert distribute.gather_replicas(x) is x


def test_the_flag_is_checked():
    assert two_tower.TwoTowerConfig.from_dict({"distribution_strategy": "mirrored"}).distribution_strategy == "mirrored"
    with pytest.raises(ValueError, match="distribution_strategy must be one of"):
        two_tower.TwoTowerConfig(distribution_strategy="tpu")
    with pytest.raises(ValueError, match="must be one of"):
        distribute.strategy("parameter_server")


def test_only_the_chief_of_a_cluster_writes_the_model():
    import tensorflow as tf

    class Resolver:
        def __init__(self, cluster, task_type, task_id):
            self.task_type, self.task_id = task_type, task_id
            self._cluster = tf.train.ClusterSpec(cluster)

        def cluster_spec(self):
            return self._cluster

    class Strategy:
        def __init__(self, *args):
            self.cluster_resolver = Resolver(*args) if args else None

    workers = {"worker": ["a:1", "b:1"]}
    assert distribute.save_dir(tf.distribute.get_strategy(), "/m") == "/m"
    assert distribute.save_dir(Strategy(workers, "worker", 0), "/m") == "/m"
    assert distribute.save_dir(Strategy(workers, "worker", 1), "/m") == "/m_worker_tmp/worker_1"
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    assert distribute.save_dir(Strategy(with_chief, "chief", 0), "/m") == "/m"
    assert distribute.save_dir(Strategy(with_chief, "worker", 0), "/m") == "/m_worker_tmp/worker_0"


_WORKER = '''
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import recsys
import numpy as np
import tensorflow as tf
from trainer import base, two_tower

strategy_name, init_path, out_path = sys.argv[1:4]
rng = np.random.default_rng(0)  # the mirrored test's data: histories of consecutive items, the next as target
last = rng.integers(0, 20, 256)
hist = np.stack([(last - 2) % 20, (last - 1) % 20, last], axis=1).astype(np.int32)
target = ((last + 1) % 20).astype(np.int32)
pop = np.bincount(target, minlength=20)[target].astype(np.float32)
data = base.SequenceArrays(hist, target, (target % 2).astype(np.int32), np.ones(256, np.float32), pop,
                           np.arange(256, dtype=np.int32))
config = two_tower.TwoTowerConfig(embedding_dim=8, hidden_dim=16, max_history=3, epochs=2, batch_size=64,
                                  learning_rate=0.01, distribution_strategy=strategy_name)
model = two_tower.compiled_model(20, 2, config)  # creates the strategy before any other TF op
with model.distribute_strategy.scope():
    model.query_tower(tf.constant(data.history[:1]))
    model.item_tower(tf.constant(data.target[:1]), tf.constant(data.target_category[:1]))
if os.path.exists(init_path):
    with np.load(init_path) as f:
        model.set_weights([f[f"w{i}"] for i in range(len(f.files))])
else:
    np.savez(init_path, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
everything = next(iter(two_tower._dataset(data, 256, 0, False, logq_correction=True)))
losses = []
class EpochLoss(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        losses.append(float(model.compute_loss(everything)))
model.fit(two_tower._dataset(data, 64, 0, True, logq_correction=True), epochs=2, verbose=0, callbacks=[EpochLoss()])
with open(out_path, "w") as f:
    json.dump({"replicas": model.distribute_strategy.num_replicas_in_sync, "losses": losses,
               "weights": [w.tolist() for w in model.get_weights()]}, f)
'''


@pytest.mark.integration
def test_multiworker_with_two_local_worker_processes_gives_the_single_device_losses(tmp_path):
    """Two worker processes (TF_CONFIG on localhost, one CPU replica each) train as one device does."""
    import json
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    init = str(tmp_path / "initial.npz")

    def run(name, out, env=None):
        return subprocess.Popen([sys.executable, str(script), name, init, str(tmp_path / out)],
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {})),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    single = run("none", "none.json")
    assert single.wait(timeout=180) == 0, single.stderr.read()[-3000:]
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = [run("multiworker", f"worker{i}.json",
                   {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    for w in workers:
        assert w.wait(timeout=300) == 0, w.stderr.read()[-3000:]
    one = json.loads((tmp_path / "none.json").read_text())
    for i in range(2):
        got = json.loads((tmp_path / f"worker{i}.json").read_text())
        assert (one["replicas"], got["replicas"]) == (1, 2)
        np.testing.assert_allclose(got["losses"], one["losses"], rtol=1e-5)
        for a, b in zip(one["weights"], got["weights"]):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)  # float32 sums in another order
