"""``tf.distribute`` strategies for the trainers: one flag, ``none`` / ``mirrored`` / ``multiworker``.

* ``none``: TensorFlow's default strategy (one device, what the trainers always did).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's devices (its GPUs, or the
  logical CPU devices configured with ``tf.config.set_logical_device_configuration``).
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``; the cluster comes from
  ``TF_CONFIG`` as Kubeflow's / Vertex's training operators set it (without it: one worker).
  TensorFlow requires it to be created before any other TF op runs in the process.

The global batch is split across replicas and gradients are summed. A loss that is a sum over
examples is then the same function of the weights on one device and on N, but in-batch
negatives are not: each replica would only see its own share of the batch's candidates.
:func:`gather_replicas` gives every replica the whole batch's candidates, so the two-tower's
in-batch softmax (and its gradient) equals the single-device one.
"""
from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multiworker")


def strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of ``STRATEGIES``)."""
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"distribution strategy must be one of {STRATEGIES}, got {name!r}")


def gather_replicas(x: tf.Tensor) -> tf.Tensor:
    """Every replica's ``x`` [n, ...] concatenated along axis 0, this replica's own rows first.

    Outside a multi-replica step it returns ``x``. Every replica must hold the same ``n`` (training
    batches drop their remainder). The gradient flows back to each replica's own rows
    (``all_gather``'s gradient), so summing the replicas' gradients gives the full-batch one.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    if not x.device:  # all_gather sends to the input's device, which a one-device multi-worker replica leaves unset
        with tf.device(ctx.strategy.extended.worker_devices[0]):
            x = tf.identity(x)
    everything = ctx.all_gather(x, axis=0)
    return tf.roll(everything, shift=-ctx.replica_id_in_sync_group * tf.shape(x)[0], axis=0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model: always, except a non-chief worker of a multi-worker cluster.

    Every worker must still call the save (it runs collective ops); the others write to a scratch
    directory (:func:`save_dir`), as TensorFlow's multi-worker guide does.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return True
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def save_dir(strategy: tf.distribute.Strategy, export_dir: str) -> str:
    """``export_dir`` on the chief, a per-worker scratch directory beside it on the other workers."""
    if is_chief(strategy):
        return export_dir
    resolver = strategy.cluster_resolver
    return f"{export_dir.rstrip('/')}_worker_tmp/{resolver.task_type}_{resolver.task_id}"
