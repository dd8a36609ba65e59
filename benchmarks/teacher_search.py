"""Is the generative head (teacher) held back by its beam search? Beam widths against scoring every item.

    TF_USE_LEGACY_KERAS=1 python benchmarks/teacher_search.py --output artifacts --dataset movielens-100k \
        [--widths 10,20,50,100] [--model DIR]

Loads the pipeline run's trained dual head (``DualHeadTrainer``; or ``--model``, a directory saved by
``benchmarks/dual_head_ablation.py --save-models``) and ranks the validation and test rows with its teacher
two ways, full ranking, history masked as the run's protocol says:

* constrained beam search (what ``generative`` serves and the evaluators report) at each ``--widths``;
* exact: log P(item | user) of every catalogue item by teacher forcing, then top-10
  (``trainer.dual_head.generative_exact_topk``): the ranking the model itself defines, no search.

If the exact ranking is far ahead, the search loses what the model knows; if they agree, the teacher's gap to the
other models is the model's. The student (retrieval head, exact dot product) is printed beside them. Each
ranking's time per row is measured in the same process. Writes ``docs/results/<dataset>.teacher_search.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)


def _rounded(m: dict) -> dict:
    return {k: round(float(v), 4) for k, v in m.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts", help="the pipeline run's artifact root")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--model", default="", help="a saved dual head (default: the run's DualHeadTrainer model)")
    p.add_argument("--widths", default="10,20,50,100", help="beam widths, comma-separated (default: %(default)s)")
    p.add_argument("--splits", default="eval,test", help="splits to rank (default: %(default)s)")
    p.add_argument("--results", default="", help="JSON to write (default docs/results/<dataset>.teacher_search.json)")
    args = p.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",") if w.strip()]
    if not widths or min(widths) < 10:
        p.error(f"--widths must be beam widths >= 10 (top-10 is scored), got {args.widths!r}")

    from recsys import names as N
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout
    from trainer import dual_head

    start = time.time()
    layout = Layout(os.path.abspath(args.output), args.dataset)
    model_dir = args.model or os.path.join(latest_output_uri(layout, "DualHeadTrainer", "model"), N.SERVING_SUBDIR)
    examples = latest_output_uri(layout, "SequenceExampleGen", "examples")
    net, items, info = dual_head.load_trained(model_dir)
    if not net.generative:
        p.error(f"the model in {model_dir} has no generative head (variant {net.config.variant!r})")
    exclude = bool(info.get("exclude_history", dual_head.exclude_history_for(examples)))
    print(f"[teacher-search] {args.dataset}: {items.num_items:,} items, model {model_dir}, "
          f"history {'masked' if exclude else 'not masked'}", flush=True)
    splits = {}
    for split in [s.strip() for s in args.splits.split(",") if s.strip()]:
        data = dual_head.load_sequences(examples, split, items, net.config)
        data = data.rows([i for i, pos in enumerate(data.positives) if len(pos)])
        rows = len(data.history)
        out = {"rows": rows}

        def timed(name, fn):
            t0 = time.time()
            top = fn()
            ms = (time.time() - t0) * 1000 / max(rows, 1)
            out[name] = dict(_rounded(dual_head.metrics_with_missing(top, data.positives, items.num_items, 10)),
                             **{"ms_per_row": round(ms, 2)})
            print(f"[teacher-search]   {split:5s} {name:22s} HR@10 {out[name]['HR@10']:.4f} "
                  f"NDCG@10 {out[name]['NDCG@10']:.4f}  {ms:.2f} ms/row", flush=True)
            return top

        timed("student", lambda: dual_head.retrieval_topk(net, data, exclude))
        exact = timed("teacher exact", lambda: dual_head.generative_exact_topk(net, data, exclude)[0])
        for w in widths:
            beam = timed(f"teacher beam {w}", lambda w=w: dual_head.generative_topk(net, data, exclude, beam_width=w)[0])
            out[f"teacher beam {w}"]["top10_overlap_with_exact"] = round(float(
                sum(len(set(a[a >= 0]) & set(b[b >= 0])) for a, b in zip(beam, exact)) / (10 * rows)), 4)
        splits[split] = out
    result = {"dataset": args.dataset,
              "command": "python benchmarks/teacher_search.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "model": model_dir, "config": {k: info["config"][k] for k in ("variant", "beam_width", "memory_tokens",
                                                                             "memory_recent", "decoder_layers")},
              "protocol": "full ranking, history masked" if exclude else "full ranking, repeats allowed",
              "splits": splits, "elapsed_s": round(time.time() - start, 1)}
    path = args.results or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                                        "results", f"{args.dataset}.teacher_search.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"[teacher-search] wrote {path} in {time.time() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
