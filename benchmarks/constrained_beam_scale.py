"""The generative head's constrained beam search at catalogue scale: the prefix trie as sorted arrays, or a
per-beam mask over the catalogue.

    TF_USE_LEGACY_KERAS=1 python benchmarks/constrained_beam_scale.py --items 1000000

``trainer.constrained_beam.constrained_beam_search`` keeps the trie of Semantic IDs as arrays over the IDs in
sorted order: per call, one prefix sum over the allowed items per request ([B, N]) and two binary searches per
child. ``masked_beam_search``, the first version, kept a [B, W, N] mask (which items each beam's prefix still
leads to) and a segment-max over the catalogue per step: 20 GB for 256 requests and 20 beams at 1M items, and
the DualHeadEvaluator could ask only 13 requests a call (issue 14). This script builds a ``DualHeadModel`` with
a generative head (default ``DualHeadConfig``, untrained weights, seed 0) over ``--items`` generated items
(three random codes of 256 and a fourth that tells apart items whose first three collide, as the Semantic ID
builder does) and, in a fresh process per search, runs ``--calls`` calls of ``--requests`` requests (random
histories; each request's history excluded, as served), the search compiled with ``tf.function`` as the
served model is. It prints seconds per call (median of the calls after the first, which traces), per request,
and the peak resident memory a call adds; then the ratios, mask over trie, and whether the two searches
returned the same items and scores (they must: the same beams, found another way). Writes
``docs/results/constrained_beam_scale.json`` unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.proc_memory import child_json, reset_peak, status_mb  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCHES = ("trie", "mask")


def _measure(args) -> dict:
    """In this process: build, then time and measure ``args.search`` (a child of ``main``)."""
    import recsys  # noqa: F401  (legacy Keras before TensorFlow)
    import numpy as np
    import tensorflow as tf

    from trainer import dual_head as D
    from trainer.constrained_beam import constrained_beam_search, masked_beam_search
    from trainer.semantic_ids import disambiguate

    rng = np.random.default_rng(0)
    n = args.items
    codes = disambiguate(rng.integers(0, 256, (n, 3))).astype(np.int32)
    items = D.ItemSpace(np.array([f"item{j:07d}" for j in range(n)], dtype=object), codes,
                        rng.normal(size=(n, args.content_dim)).astype(np.float32),
                        (np.arange(n) % 50).astype(np.int32), rng.integers(0, 20, n).astype(np.float32))
    config = D.DualHeadConfig(beam_width=args.beam_width)
    if not config.has_generative_head:
        raise SystemExit(f"the default DualHeadConfig has no generative head ({config})")
    tf.keras.utils.set_random_seed(0)
    model = D.DualHeadModel(items, config)
    model.build_variables()
    head = model._head()
    h, b = config.max_history, args.requests
    lengths = rng.integers(1, h + 1, (args.calls, b))
    hist = np.full((args.calls, b, h), items.pad, np.int32)
    for c in range(args.calls):
        for r, m in enumerate(lengths[c]):
            hist[c, r, :m] = rng.integers(0, n, m)
    rel = np.where(hist < n, 1, 0).astype(np.int32)
    events = np.where(hist < n, 4, 0).astype(np.int32)
    catalogue_codes = model.codes[:n]

    def search_eager(history, order_rel, ev):
        states, mask = model.encode(history, order_rel, ev)
        step = head.beam_step(model.memory(states, mask))
        rows = tf.repeat(tf.range(tf.shape(history)[0]), tf.shape(history)[1])
        cols = tf.reshape(history, [-1])
        real = cols < n
        seen = tf.scatter_nd(tf.stack([tf.boolean_mask(rows, real), tf.boolean_mask(cols, real)], 1),
                             tf.ones_like(tf.boolean_mask(cols, real)), [tf.shape(history)[0], n])
        allowed = seen == 0
        if args.search == "trie":
            return constrained_beam_search(step, model.item_tables.trie, allowed, config.beam_width)
        return masked_beam_search(step, catalogue_codes, allowed, head.sizes, config.beam_width)

    search = tf.function(search_eager)
    built = status_mb("VmRSS")
    seconds, compiled = [], None
    reset_peak()
    for c in range(args.calls):
        start = time.perf_counter()
        found, scores = search(tf.constant(hist[c]), tf.constant(rel[c]), tf.constant(events[c]))
        seconds.append(time.perf_counter() - start)
        if compiled is None:
            compiled = (found.numpy().tolist(), scores.numpy().tolist())
    peak = status_mb("VmHWM") - built
    # the same first call run eagerly: op by op, as the tests run both searches (a compiled graph's rewrites may
    # round the decoder differently in the two searches' graphs)
    eager = [t.numpy().tolist() for t in search_eager(tf.constant(hist[0]), tf.constant(rel[0]), tf.constant(events[0]))]
    return {"search": args.search, "built_rss_mb": round(built), "first_call_s": round(seconds[0], 2),
            "call_s": round(float(np.median(seconds[1:])), 4), "calls": len(seconds),
            "request_ms": round(1000 * float(np.median(seconds[1:])) / b, 2),
            "peak_added_mb": round(peak), "levels": list(head.sizes),
            "items_found": int(np.sum(np.array(compiled[0]) >= 0)), "compiled": compiled, "eager": eager}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--content-dim", type=int, default=64, help="content embedding size (the search never reads it)")
    p.add_argument("--requests", type=int, default=13, help="requests per call (13: what the mask allowed at 1M)")
    p.add_argument("--beam-width", type=int, default=20)
    p.add_argument("--calls", type=int, default=4, help="calls per search (the first traces)")
    p.add_argument("--only-trie", action="store_true",
                   help="run the trie search alone (e.g. at a call size the mask does not fit); prints, writes nothing")
    p.add_argument("--search", choices=SEARCHES, help=argparse.SUPPRESS)  # the child's search
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.calls < 2:
        p.error("--calls must be at least 2 (the first call traces)")
    if args.search:
        print(json.dumps(_measure(args)), flush=True)
        return {}
    import numpy as np

    argv = list(argv if argv is not None else sys.argv[1:])
    out = {}
    for search in SEARCHES[:1] if args.only_trie else SEARCHES:
        cmd = [sys.executable, os.path.abspath(__file__), "--search", search] + [
            a for a in argv if a not in ("--no-write", "--only-trie")]
        print(f"[{search}] {args.items:,} items, {args.requests} requests × {args.beam_width} beams a call, "
              f"{args.calls} calls (a fresh process)", flush=True)
        out[search] = child_json(cmd, search)
        r = out[search]
        print(f"  model built at {r['built_rss_mb']:,} MB; {r['call_s']:.3f} s a call ({r['request_ms']:.1f} ms a "
              f"request; first call {r['first_call_s']:.1f} s), +{r['peak_added_mb']:,} MB peak while searching",
              flush=True)
    if args.only_trie:
        return out
    trie, mask = out["trie"], out["mask"]
    same = trie["eager"] == mask["eager"]
    rows = [a == b for a, b in zip(trie["compiled"][0], mask["compiled"][0])]
    gap = float(np.max(np.abs(np.array(trie["compiled"][1]) - np.array(mask["compiled"][1]))))
    for r in out.values():
        r.pop("eager"), r.pop("compiled")
    result = {
        "command": "python benchmarks/constrained_beam_scale.py " + " ".join(a for a in argv if a != "--no-write"),
        "items": args.items, "requests": args.requests, "beam_width": args.beam_width,
        "load_avg": [round(x, 2) for x in os.getloadavg()[:2]], "searches": out,
        "ratios_mask_over_trie": {"call_s": round(mask["call_s"] / trie["call_s"], 2),
                                  "peak_added_mb": round(mask["peak_added_mb"] / max(trie["peak_added_mb"], 1), 2)},
        "same_items_and_scores": same,
        "compiled_rows_with_the_same_items": f"{sum(rows)} of {len(rows)}",
        "compiled_largest_score_difference": gap,
    }
    print(f"mask / trie: {result['ratios_mask_over_trie']['call_s']}x the time a call, "
          f"{result['ratios_mask_over_trie']['peak_added_mb']}x the memory; same items and scores (eager): {same}; "
          f"compiled: the same items in {sum(rows)} of {len(rows)} requests, scores within {gap:.2g}")
    if not same:
        raise SystemExit("the two searches disagree: the trie search is wrong")
    if not args.no_write:
        path = os.path.join(ROOT, "docs", "results", "constrained_beam_scale.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print(f"wrote {os.path.relpath(path, ROOT)}")
    return result


if __name__ == "__main__":
    main()
