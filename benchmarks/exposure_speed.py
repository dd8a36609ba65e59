"""ExposureBuilder's candidate step, per-unit against vectorised, in one process on synthetic data.

    TF_USE_LEGACY_KERAS=1 python benchmarks/exposure_speed.py --users 2000 --items 20000 --events 40000 \
        --output docs/results/exposure_speed.json

What runs: ``transform.exposures.CandidateFn.process`` — the DoFn of ``ExposureBuilder`` — over every ranked
unit of the synthetic generator's users, once with ``vectorised=False`` (the former path: each retriever's
batched output turned into per-unit Python lists, then ``exposure_row`` and ``to_example`` unit by unit) and once
with ``vectorised=True`` (the outputs stay arrays; merge, features, labels for the whole chunk in numpy,
``exposure_examples``), on the same batches of 128 users (``BuildExposures``' batch size): each batch goes
through the old path, the new one and the retriever calls alone in turn (which goes first rotates), so a
change of the shared machine's load, which moves within seconds, hits all three alike; ``--repeats`` passes
over every batch, each reported with its ratios. The records of the two paths are
compared (parsed and re-serialized deterministically: a protobuf map's order changes from message to message).

The inputs are the pipeline's: the synthetic generator (``recsys.data.synthetic``, leave-one-out, as ``recsys
run --dataset synthetic``), the sequence rows of ``transform.sequences.build_user_rows`` and the ranking window
of ``transform.ranking_window.split_window`` (5 units), so the units, histories and candidate counts follow the
scale rung's (the default 20 events per user and 20,000 items are the 20k rung's). The retrievers are
**in-process TensorFlow stand-ins** for the brute-force SavedModels, with their signatures and math (a
64-d vector per item; the two-tower's query is the mean of the last 50 history items' vectors, the graph's a
vector per user; scores of the whole catalogue, the history excluded on leave-one-out data, ``top_k``, "" where
fewer items are left): their cost is the same for both paths and is timed on its own (``retrievers_s``), so the
ratio of what changed is ``old - retrievers`` over ``new - retrievers``. Both retriever sets (prefix and
served) are the same stand-in; the popularity counts are the training rows' targets.

Prints the figures and writes ``--output`` (with the command and the load averages around each timing).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402

USERS_PER_BATCH = 128  # BuildExposures' users_per_batch


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def build_batches(users: int, items: int, events: int, seed: int) -> tuple[list, dict, dict, int]:
    """(batches of ``(user, [(split, row)])``, item counts, item category, ranked units) from the generator."""
    from recsys import features as F
    from recsys.data import synthetic
    from transform import exposures as X
    from transform.ranking_window import DEFAULT_WINDOW, WINDOW, split_window
    from transform.sequences import Event, build_user_rows

    ds = synthetic.generate(users, items, events, seed)
    category = dict(zip(ds.items["item_id"], ds.items["category"]))
    ev = ds.events
    by_user: dict[str, list] = {}
    for seq, u, i, e, t, o in zip(ev.index, ev["user_id"], ev["item_id"], ev["event_type"], ev["timestamp"],
                                  ev["order_id"]):
        by_user.setdefault(u, []).append(Event(int(t), i, e, o, int(seq)))
    grouped, counts, units = [], {}, 0
    for u, events_of_user in sorted(by_user.items()):
        rows = build_user_rows(u, events_of_user, category, ds.protocol)
        train = [r for s, r in rows if s == F.TRAIN]
        for r in train:
            for t in r[F.TARGET_ITEM_ID.name]:
                counts[t] = counts.get(t, 0) + 1
        keyed = [((r[F.TARGET_ORDER_POS.name], r[F.TARGET_TIMESTAMP.name], len(r[F.HISTORY_ITEM_ID.name])), k)
                 for k, r in enumerate(train)]
        prefix, window = split_window(keyed, DEFAULT_WINDOW) if keyed else ([], [])
        pairs = [(F.TRAIN, train[k]) for k in prefix] + [(WINDOW, train[k]) for k in window] + \
            [(s, r) for s, r in rows if s in (F.EVAL, F.TEST)]
        units += len(X.units_of_user(pairs))
        grouped.append((u, pairs))
    batches = [grouped[s:s + USERS_PER_BATCH] for s in range(0, len(grouped), USERS_PER_BATCH)]
    return batches, counts, category, units


class StandIn:
    """A brute-force retriever's signatures (``serving_default``, ``recommend_user``, ``user_vector``) in TF."""

    def __init__(self, item_ids: list[str], user_ids: list[str], dim: int = 64, max_history: int = 50, seed: int = 0):
        import tensorflow as tf

        from recsys import names as N

        rng = np.random.default_rng(seed)
        vectors = rng.normal(size=(len(item_ids), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        users = rng.normal(size=(len(user_ids) + 1, dim)).astype(np.float32)
        n = len(item_ids)
        ids = tf.constant(item_ids + [""])
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(ids[:-1], tf.range(n, dtype=tf.int64)),
                                          default_value=n)
        user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(user_ids), tf.range(len(user_ids), dtype=tf.int64)),
            default_value=len(user_ids))
        items_t = tf.constant(np.concatenate([vectors, np.zeros((1, dim), np.float32)]))
        users_t = tf.constant(users)

        def top_k(query, k, exclude):
            scores = tf.matmul(query, items_t[:n], transpose_b=True)                      # [B, N]
            pos = table.lookup(exclude)                                                   # [B, E]
            rows = tf.broadcast_to(tf.range(tf.shape(pos, out_type=tf.int64)[0])[:, None], tf.shape(pos))
            keep = pos < n
            idx = tf.stack([tf.boolean_mask(rows, keep), tf.boolean_mask(pos, keep)], axis=1)
            scores = tf.tensor_scatter_nd_update(scores, idx, tf.fill([tf.shape(idx)[0]], -np.inf))
            top = tf.math.top_k(scores, tf.reduce_max(k))
            found = tf.math.is_finite(top.values)
            return {N.ITEM_IDS: tf.where(found, tf.gather(ids, top.indices), ""),
                    N.SCORES: tf.where(found, top.values, 0.0)}

        @tf.function(reduce_retracing=True)
        def recommend_history(history, k, exclude):
            h = history[:, -max_history:]
            pos = table.lookup(h)
            known = tf.cast(pos < n, tf.float32)[:, :, None]
            query = tf.reduce_sum(tf.gather(items_t, pos) * known, 1) / tf.maximum(tf.reduce_sum(known, 1), 1.0)
            return top_k(query, k, exclude)

        @tf.function(reduce_retracing=True)
        def recommend_user(user_id, k, exclude):
            return top_k(tf.gather(users_t, user_table.lookup(user_id)), k, exclude)

        @tf.function(reduce_retracing=True)
        def user_vector(user_id):
            return {N.EMBEDDING: tf.gather(users_t, user_table.lookup(user_id))}

        self.signatures = {N.SERVING_DEFAULT: recommend_history, N.RECOMMEND_USER: recommend_user,
                           N.USER_VECTOR: user_vector}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--events", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", default="")
    args = ap.parse_args(argv)

    import tensorflow as tf

    from transform import exposures as X

    t0 = time.time()
    batches, counts, category, units = build_batches(args.users, args.items, args.events, args.seed)
    user_ids = sorted(u for b in batches for u, _ in b)
    print(f"[exposure_speed] {len(user_ids):,} users, {units:,} ranked units, {len(category):,} items; "
          f"inputs built in {time.time() - t0:.0f}s", flush=True)
    stand_in = StandIn(sorted(category), user_ids, seed=args.seed)
    real_load = tf.saved_model.load
    tf.saved_model.load = lambda path: stand_in
    try:
        fns = {}
        for vectorised in (False, True):
            fn = X.CandidateFn(X.RetrieverSet("prefix_two_tower", "prefix_graph", counts),
                               X.RetrieverSet("two_tower", "graph", counts), category, exclude_history=True,
                               vectorised=vectorised)
            fn.setup()
            fns[vectorised] = fn
    finally:
        tf.saved_model.load = real_load

    def chunks_of(fn, b):
        """The chunks ``CandidateFn.process`` hands the retrievers for batch ``b`` (split, units)."""
        by_split: dict = {}
        for _, rows in b:
            for u in X.units_of_user(list(rows)):
                by_split.setdefault(u.split, []).append(u)
        return [(split, us[s:s + fn._batch_size]) for split, us in by_split.items()
                for s in range(0, len(us), fn._batch_size)]

    def timed(kind: str, b) -> float:
        start = time.perf_counter()
        if kind == "retrievers_only":
            fn = fns[True]
            for split, chunk in chunks_of(fn, b):
                fn._ask_retrievers(chunk, fn._sets[split])
        else:
            for _ in fns[kind == "vectorised"].process(b):
                pass
        return time.perf_counter() - start

    # warm-up (traces every tf.function shape once) and the equality check
    old_out = [o for b in batches for o in fns[False].process(b)]
    new_out = [o for b in batches for o in fns[True].process(b)]

    def canonical(o):
        return (o.tag, o.value if o.tag == "stats" else
                tf.train.Example.FromString(o.value).SerializeToString(deterministic=True))

    identical = [canonical(o) for o in old_out] == [canonical(o) for o in new_out]
    records = sum(1 for o in new_out if o.tag != "stats")
    candidates = float(np.mean([o.value["candidates"] for o in new_out if o.tag == "stats"]))
    del old_out, new_out
    print(f"[exposure_speed] {records:,} records, {candidates:.1f} candidates per unit; "
          f"records identical: {identical}", flush=True)
    # each batch of 128 users through the three in turn (the first of them alternating), so that the shared
    # machine's load, which moves within seconds, hits all three alike; per repeat the sums over batches
    kinds = ("per_unit", "vectorised", "retrievers_only")
    timings = []
    for rep in range(args.repeats):
        before = _load()
        sums = dict.fromkeys(kinds, 0.0)
        for i, b in enumerate(batches):
            for kind in kinds[i % 3:] + kinds[:i % 3]:
                sums[kind] += timed(kind, b)
        timings.append({"repeat": rep, **{k: round(v, 3) for k, v in sums.items()},
                        "ratio": round(sums["per_unit"] / sums["vectorised"], 2),
                        "ratio_beyond_retrievers": round((sums["per_unit"] - sums["retrievers_only"])
                                                         / max(sums["vectorised"] - sums["retrievers_only"], 1e-9), 2),
                        "load_before": before, "load_after": _load()})
        t = timings[-1]
        print(f"[exposure_speed] repeat {rep}: per-unit {t['per_unit']:7.2f} s, vectorised {t['vectorised']:6.2f} s, "
              f"retrievers {t['retrievers_only']:5.2f} s: x{t['ratio']} (x{t['ratio_beyond_retrievers']} beyond the "
              f"retrievers), load {before[0]}-{t['load_after'][0]}", flush=True)

    def median(key):
        return statistics.median(t[key] for t in timings)

    old, new, retr = median("per_unit"), median("vectorised"), median("retrievers_only")
    summary = {
        "per_unit_s": old, "vectorised_s": new, "retrievers_s": retr,
        "ratio_median": round(median("ratio"), 2), "ratio_range": [min(t["ratio"] for t in timings),
                                                         max(t["ratio"] for t in timings)],
        "ratio_beyond_retrievers_median": round(median("ratio_beyond_retrievers"), 2),
        "per_unit_us_per_unit_beyond_retrievers": round(1e6 * (old - retr) / records, 1),
        "vectorised_us_per_unit_beyond_retrievers": round(1e6 * (new - retr) / records, 1),
    }
    print(f"[exposure_speed] medians of {args.repeats}: per-unit {old:.2f} s, vectorised {new:.2f} s, of which the "
          f"retrievers {retr:.2f} s; ratio x{summary['ratio_median']} (range {summary['ratio_range'][0]}-"
          f"{summary['ratio_range'][1]}), beyond the retrievers x{summary['ratio_beyond_retrievers_median']} "
          f"({summary['per_unit_us_per_unit_beyond_retrievers']:.0f} -> "
          f"{summary['vectorised_us_per_unit_beyond_retrievers']:.0f} us per unit)", flush=True)
    result = {
        "command": "python benchmarks/exposure_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "users": len(user_ids), "items": len(category), "events": args.events, "seed": args.seed,
        "units": records, "candidates_per_unit": round(candidates, 1), "records_identical": identical,
        "retrievers": "in-process TF brute-force stand-ins (benchmarks/exposure_speed.py StandIn)",
        "summary": summary, "timings": timings,
    }
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
        print(f"[exposure_speed] wrote {args.output}", flush=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
