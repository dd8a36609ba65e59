"""Campaign batch job (CRM / push): every user's most likely next items from the generative model, on Beam.

    python -m apps.campaign --model-dir artifacts/serving/generative --examples <Examples uri> \\
        --output artifacts/campaign/next_items [--top-n 5] [--exclude-history] [-- --runner=DataflowRunner ...]
    recsys campaign --dataset movielens-100k --output artifacts   # finds both from the run

Each user's latest history (item ids oldest first, with order positions) comes
from the pipeline's Examples. The Beam pipeline batches users, calls the
``generative`` SavedModel's ``recommend_orders`` signature once per batch in a
DoFn that loads the model once per worker, and writes one JSON line per user::

    {"user_id": "196", "items": ["302", ...], "log_likelihoods": [-5.1, ...]}

Arguments after ``--`` go to Beam, so other runners' options work unchanged;
the local default is the DirectRunner, in memory, with one worker.
"""
import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)

import argparse
import json
import os
import sys
import time
from typing import Iterator, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from recsys import features as F
from recsys import names as N

SIGNATURE = N.RECOMMEND_ORDERS
SIGNATURE_INPUTS, SIGNATURE_OUTPUTS = N.SIGNATURES[N.GENERATIVE][SIGNATURE]
# The dual-head retrieval model also has a ``recommend_orders`` signature (dot-product scores, not
# log-likelihoods); its ``embed_content`` signature, which the generative model lacks, tells them apart.
RETRIEVAL_ONLY_SIGNATURE = N.EMBED_CONTENT
DEFAULT_BEAM_ARGS = ("--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1")  # as the pipeline's
SUFFIX = ".jsonl"
METRICS_NAMESPACE = "campaign"
SCORE_DECIMALS = 5

UserHistory = tuple[str, list[str], list[int]]  # (user_id, item ids oldest first, order position of each item)


def user_histories_from_examples(examples_uri: str) -> list[UserHistory]:
    """Each user's latest history (``transform.examples_io.latest_histories``), sorted by user id."""
    from transform import examples_io

    return [(user, h.items, h.order_pos) for user, h in examples_io.latest_histories(examples_uri).items()]


def resolve_model_dir(path: str) -> str:
    """The SavedModel directory ``path``, or the highest numeric version under a model base directory ``path``."""
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"model directory {path} does not exist")
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(path)]  # object stores list dirs as "name/"
    versions = [int(name) for name in names
                if name.isdigit() and tf.io.gfile.exists(os.path.join(path, name, "saved_model.pb"))]
    if not versions:
        raise FileNotFoundError(f"{path} holds no saved_model.pb and no numbered version directory with one")
    return os.path.join(path, str(max(versions)))


def check_generative_model(model_dir: str) -> None:
    """Raises ValueError unless the SavedModel in ``model_dir`` has the generative ``recommend_orders`` contract.

    Reads the signatures from ``saved_model.pb`` without loading the model.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    signatures = {name: sig for graph in saved.meta_graphs for name, sig in graph.signature_def.items()
                  if not name.startswith("__")}
    if SIGNATURE not in signatures:
        raise ValueError(f"{model_dir} has no {SIGNATURE!r} signature, so it is not the generative model "
                         f"(its signatures: {sorted(signatures)}); point --model-dir at serving/generative")
    if RETRIEVAL_ONLY_SIGNATURE in signatures:
        raise ValueError(f"{model_dir} is the dual-head retrieval model, not the generative model: its "
                         f"{SIGNATURE!r} returns similarity scores, not log-likelihoods (its signatures: "
                         f"{sorted(signatures)}); point --model-dir at serving/generative")
    sig = signatures[SIGNATURE]
    if sorted(sig.inputs) != sorted(SIGNATURE_INPUTS) or not set(SIGNATURE_OUTPUTS) <= set(sig.outputs):
        raise ValueError(f"{model_dir}: {SIGNATURE!r} takes {sorted(sig.inputs)} and returns "
                         f"{sorted(sig.outputs)}; the campaign needs inputs {sorted(SIGNATURE_INPUTS)} "
                         f"and outputs {sorted(SIGNATURE_OUTPUTS)}")


def batch_inputs(batch: Sequence[UserHistory], top_n: int, exclude_history: bool) -> dict[str, np.ndarray]:
    """The ``recommend_orders`` inputs for a batch of B users, histories right-padded to the longest (L ≥ 1).

    Returns ``history`` str [B, L] ("" padding), ``order_pos`` int64 [B, L]
    (0 padding), ``k`` int32 [B] (= ``top_n``) and ``exclude`` str [B, E]:
    the padded histories (E = L) if ``exclude_history``, else [B, 1] of "".
    """
    width = max([len(items) for _, items, _ in batch] + [1])
    history = np.array([items + [""] * (width - len(items)) for _, items, _ in batch], dtype=object)
    order_pos = np.array([pos + [0] * (width - len(pos)) for _, _, pos in batch], dtype=np.int64)
    exclude = history if exclude_history else np.full((len(batch), 1), "", dtype=object)
    return {"history": history, "order_pos": order_pos, "k": np.full(len(batch), top_n, np.int32),
            "exclude": exclude}


def user_record(user_id: str, item_ids: np.ndarray, scores: np.ndarray) -> dict:
    """One output record from a user's model outputs (bytes [K], float [K]); "" items (no item) are dropped."""
    kept = [(item.decode("utf-8"), float(score)) for item, score in zip(item_ids.tolist(), scores.tolist()) if item]
    return {"user_id": user_id, "items": [item for item, _ in kept],
            "log_likelihoods": [round(score, SCORE_DECIMALS) for _, score in kept]}


class RecommendNextItems(beam.DoFn):
    """A batch of ``UserHistory`` → one JSON line per user, from the generative SavedModel.

    The model is loaded once per DoFn instance, in ``setup``; each batch is
    one ``recommend_orders`` call.
    """

    def __init__(self, model_dir: str, top_n: int, exclude_history: bool):
        self._model_dir = model_dir
        self._top_n = top_n
        self._exclude_history = exclude_history
        self._model = None
        self._users = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "users")
        self._empty = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "users_without_items")

    def setup(self) -> None:
        self._model = tf.saved_model.load(self._model_dir)  # keeps the signature's variables alive

    def process(self, batch: Sequence[UserHistory]) -> Iterator[str]:
        inputs = batch_inputs(batch, self._top_n, self._exclude_history)
        out = self._model.signatures[SIGNATURE](**{name: tf.constant(value) for name, value in inputs.items()})
        for (user_id, _, _), item_ids, scores in zip(batch, out["item_ids"].numpy(), out["scores"].numpy()):
            record = user_record(user_id, item_ids, scores)
            self._users.inc()
            if not record["items"]:
                self._empty.inc()
            yield json.dumps(record, allow_nan=False)


def run_campaign(model_dir: str, users: Sequence[UserHistory], output_path: str, top_n: int = 5,
                 batch_size: int = 256, exclude_history: bool = False, beam_args: Sequence[str] | None = None,
                 num_shards: int = 1) -> list[str]:
    """Runs the Beam job and returns the written file(s).

    Args:
      model_dir: the generative SavedModel, or its base directory of numbered versions (the highest is used).
      users: ``(user_id, items oldest first, order positions)`` per user, e.g. from
        ``user_histories_from_examples``.
      output_path: output prefix; ``.jsonl`` is appended (a trailing ``.jsonl`` is not doubled).
      top_n: items per user (the model may return fewer; "" items are dropped).
      batch_size: users per model call.
      exclude_history: never recommend an item of the user's history (off by default: on grocery
        data re-buying is the point).
      beam_args: Beam pipeline options (default ``DEFAULT_BEAM_ARGS``: Beam's FnApiRunner in memory, one worker).
      num_shards: 1 writes ``<prefix>.jsonl``; more write ``<prefix>-SSSSS-of-NNNNN.jsonl``.

    Returns:
      The written file paths: ``[<prefix>.jsonl]`` for one shard, else the sorted shard paths.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if not users:
        raise ValueError("no users to score: the user list is empty (do the Examples hold sequence rows?)")
    for user_id, items, positions in users:
        if len(items) != len(positions):
            raise ValueError(f"user {user_id!r} has {len(items)} items but {len(positions)} order positions")
    model_dir = resolve_model_dir(model_dir)
    check_generative_model(model_dir)
    prefix = output_path[:-len(SUFFIX)] if output_path.endswith(SUFFIX) else output_path

    start = time.time()
    print(f"[campaign] {len(users):,} users, top {top_n} from {model_dir} → {prefix}{SUFFIX}", flush=True)
    pipeline = beam.Pipeline(options=PipelineOptions(list(DEFAULT_BEAM_ARGS if beam_args is None else beam_args)))
    _ = (pipeline
         | "Users" >> beam.Create(list(users))
         | "Batch" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
         | "Recommend" >> beam.ParDo(RecommendNextItems(model_dir, top_n, exclude_history))
         | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=SUFFIX, num_shards=num_shards,
                                          shard_name_template="" if num_shards == 1 else None))
    result = pipeline.run()
    result.wait_until_finish()

    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]}
    written = [prefix + SUFFIX] if num_shards == 1 else sorted(tf.io.gfile.glob(f"{prefix}-*-of-*{SUFFIX}"))
    print(f"[campaign] wrote {', '.join(written)}: {counters.get('users', 0):,} users, "
          f"{counters.get('users_without_items', 0):,} without items, in {time.time() - start:.1f}s", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: reads the users' latest histories from ``--examples`` and runs ``run_campaign``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args = None
    if "--" in argv:
        split = argv.index("--")
        argv, beam_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(prog="python -m apps.campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True,
                        help="the generative SavedModel (a dir with saved_model.pb) or its base dir of "
                             "numbered versions (the highest is used)")
    parser.add_argument("--examples", required=True, help="the pipeline's SequenceExampleGen Examples artifact uri")
    parser.add_argument("--output", required=True, help="output prefix; '.jsonl' is appended")
    parser.add_argument("--top-n", type=int, default=5, help="items per user (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256, help="users per model call (default: %(default)s)")
    parser.add_argument("--num-shards", type=int, default=1, help="output files (default: %(default)s)")
    parser.add_argument("--exclude-history", action="store_true",
                        help="never recommend what the user already has (off: on grocery data re-buying is the point)")
    args = parser.parse_args(argv)

    start = time.time()
    users = user_histories_from_examples(args.examples)
    print(f"[campaign] read {len(users):,} users' latest histories from {args.examples} "
          f"in {time.time() - start:.1f}s", flush=True)
    run_campaign(args.model_dir, users, args.output, top_n=args.top_n, batch_size=args.batch_size,
                 exclude_history=args.exclude_history, beam_args=beam_args, num_shards=args.num_shards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
