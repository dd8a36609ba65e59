"""Campaign batch job: every user's most likely next items from the generative head, as a Beam pipeline.

    python -m recsys.campaign --model-dir artifacts/serving/generative --examples <Examples uri> \\
        --output artifacts/campaign/next_items [--top-n 5] [-- --runner=DataflowRunner ...]
    recsys campaign --dataset movielens-100k --output artifacts   # finds both from the run

Reads each user's latest history (items with order positions) from the
pipeline's Examples, batches users, calls the ``generative`` SavedModel's
``recommend_orders`` signature (constrained beam search) in a DoFn that loads
the model once per worker, and writes one JSON line per user::

    {"user_id": "196", "items": ["302", ...], "log_likelihoods": [-5.1, ...]}

Arguments after ``--`` go to Beam (other runners' options work unchanged);
the local default is the DirectRunner in-memory with one worker.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Iterable, Sequence

import recsys  # noqa: F401  (legacy Keras before TensorFlow)

SIGNATURE = "recommend_orders"
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
UserHistory = tuple  # (user_id: str, items: list[str], order_positions: list[int])


def resolve_model_dir(path: str) -> str:
    """A SavedModel directory, or the highest numeric version under a model base directory."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
    if not versions:
        raise FileNotFoundError(f"{path} is neither a SavedModel nor a directory of numbered versions")
    return os.path.join(path, str(max(versions)))


def user_histories_from_examples(examples_uri: str) -> list[UserHistory]:
    """Each user's latest history with order positions (most recent row's history + its targets), by user id."""
    from tfx_pipeline.components.dual_head_exporter import latest_histories_with_orders

    latest = latest_histories_with_orders(examples_uri)
    return [(u, latest[u][0], latest[u][1]) for u in sorted(latest)]


class _Recommend:
    """DoFn body (kept importable for tests): a batch of users → JSON lines."""

    def __init__(self, model_dir: str, top_n: int, exclude_history: bool):
        self.model_dir, self.top_n, self.exclude_history = model_dir, top_n, exclude_history
        self._fn = None

    def setup(self) -> None:
        import tensorflow as tf

        self._fn = tf.saved_model.load(self.model_dir).signatures[SIGNATURE]

    def __call__(self, batch: Sequence[UserHistory]) -> Iterable[str]:
        import numpy as np
        import tensorflow as tf

        width = max([len(h) for _, h, _ in batch] + [1])
        hist = np.array([list(h) + [""] * (width - len(h)) for _, h, _ in batch], dtype=object).astype(bytes)
        pos = np.array([list(p) + [0] * (width - len(p)) for _, _, p in batch], dtype=np.int64)
        exclude = hist if self.exclude_history else np.full((len(batch), 1), b"")
        out = self._fn(history=tf.constant(hist), order_pos=tf.constant(pos),
                       k=tf.constant([self.top_n] * len(batch), tf.int32), exclude=tf.constant(exclude))
        for (user, _, _), ids, scores in zip(batch, out["item_ids"].numpy(), out["scores"].numpy()):
            keep = [(i.decode(), float(s)) for i, s in zip(ids, scores) if i]
            yield json.dumps({"user_id": user, "items": [i for i, _ in keep],
                              "log_likelihoods": [round(s, 5) for _, s in keep]})


def run_campaign(model_dir: str, users: Sequence[UserHistory], output_path: str, top_n: int = 5,
                 batch_size: int = 256, exclude_history: bool = False, beam_args: Sequence[str] | None = None,
                 num_shards: int = 1) -> list[str]:
    """Runs the Beam job; returns the written file(s). ``output_path`` is a prefix (``.jsonl`` is appended)."""
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions

    if top_n < 1 or batch_size < 1:
        raise ValueError(f"top_n and batch_size must be positive, got {top_n}, {batch_size}")
    if not users:
        raise ValueError("no users to score: the Examples hold no sequence rows")
    model_dir = resolve_model_dir(model_dir)
    signatures = list(tf.saved_model.load(model_dir).signatures)
    if SIGNATURE not in signatures or "embed_content" in signatures:
        raise ValueError(f"{model_dir} is not the generative model (its signatures: {sorted(signatures)}); "
                         "point --model-dir at artifacts/serving/generative")
    body = _Recommend(model_dir, top_n, exclude_history)

    class RecommendFn(beam.DoFn):
        def __init__(self):
            self.users = beam.metrics.Metrics.counter("campaign", "users")
            self.empty = beam.metrics.Metrics.counter("campaign", "users_without_items")

        def setup(self):
            body.setup()

        def process(self, batch):
            for line in body(batch):
                self.users.inc()
                if '"items": []' in line:
                    self.empty.inc()
                yield line

    start = time.time()
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    print(f"[campaign] {len(users):,} users, top {top_n} from {model_dir} → {output_path}.jsonl", flush=True)
    options = PipelineOptions(list(beam_args if beam_args is not None else DEFAULT_BEAM_ARGS))
    with beam.Pipeline(options=options) as p:
        _ = (p
             | "Users" >> beam.Create(list(users))
             | "Batch" >> beam.BatchElements(min_batch_size=min(16, batch_size), max_batch_size=batch_size)
             | "Recommend" >> beam.ParDo(RecommendFn())
             | "Write" >> beam.io.WriteToText(output_path, file_name_suffix=".jsonl", num_shards=num_shards,
                                              shard_name_template="" if num_shards == 1 else None))
    written = [output_path + ".jsonl"] if num_shards == 1 else sorted(
        tf.io.gfile.glob(output_path + "-*-of-*.jsonl"))
    print(f"[campaign] wrote {', '.join(written)} in {time.time() - start:.1f}s", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args = None
    if "--" in argv:
        i = argv.index("--")
        argv, beam_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m recsys.campaign", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True, help="generative SavedModel, or its base dir of versions")
    p.add_argument("--examples", required=True, help="the pipeline's SequenceExampleGen Examples directory")
    p.add_argument("--output", required=True, help="output prefix; '.jsonl' is appended")
    p.add_argument("--top-n", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--exclude-history", action="store_true",
                   help="never recommend what the user already has (off: on grocery data re-buying is the point)")
    args = p.parse_args(argv)
    run_campaign(args.model_dir, user_histories_from_examples(args.examples), args.output, args.top_n,
                 args.batch_size, args.exclude_history, beam_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
