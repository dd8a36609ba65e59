"""Memory of the users' stored histories in a dual-head SavedModel: string cells, or int32 positions into a table
of the distinct strings.

    TF_USE_LEGACY_KERAS=1 python benchmarks/stored_histories_memory.py --users 464143 --items 1000000

``export.dual_head.StoredHistories`` holds every known user's latest ``--history`` items and behaviours for the
``recommend_user`` signature. It held them as two [U+1, H] ``tf.string`` tables; it now holds int32 positions
into one table of their distinct strings. For each layout, in a fresh process, this script builds the module
over generated histories (``--users`` users, item ids drawn from ``--items``, three behaviours), saves it as a
SavedModel with a ``recommend_user``-like signature, and loads it in another fresh process: the resident memory
the loaded model holds, its size on disk, and the answer for a few users (the same in both layouts, which the
script checks). Prints the ratios, strings over positions.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.proc_memory import child_json, status_mb  # noqa: E402

LAYOUTS = ("positions", "strings")
PROBE = ["user0000000", "user0000001", "user0000077", "nobody"]


def _save(args) -> dict:
    import recsys  # noqa: F401
    import numpy as np
    import tensorflow as tf

    from export.dual_head import StoredHistories
    from trainer.base import frozen_table

    rng = np.random.default_rng(0)
    users = [f"user{u:07d}" for u in range(args.users)]
    behaviours = ["click", "cart", "purchase"]
    histories = [[f"item{j:07d}" for j in rng.integers(0, args.items, args.history)] for _ in users]
    events = [[behaviours[j] for j in rng.integers(0, 3, args.history)] for _ in users]
    positions = [list(range(args.history))] * args.users
    stored = StoredHistories(users, histories, positions, events, args.history)
    if args.layout == "strings":  # the former layout: the strings themselves, one cell each
        table = stored.strings.numpy()
        stored.ids = frozen_table(table[stored.ids.numpy()], tf.string)
        stored.events = frozen_table(table[stored.events.numpy()], tf.string)
        lookup = stored.lookup

        def read(user_id):
            row = lookup.lookup(user_id)
            return tf.gather(stored.ids, row), tf.gather(stored.order_pos, row), tf.gather(stored.events, row)
    else:
        read = stored

    class Served(tf.Module):
        def __init__(self):
            super().__init__()
            self.stored = stored

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def recommend_user(self, user_id):
            ids, pos, ev = read(user_id)
            return {"ids": ids, "order_pos": pos, "events": ev}

    module = Served()
    tf.saved_model.save(module, args.path, signatures={"serving_default": module.recommend_user})
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.path) for f in fs)
    return {"saved_mb": round(size / 2 ** 20, 1)}


def _load(args) -> dict:
    import recsys  # noqa: F401
    import tensorflow as tf

    before = status_mb("VmRSS")
    loaded = tf.saved_model.load(args.path)
    out = loaded.signatures["serving_default"](user_id=tf.constant(PROBE))
    return {"loaded_rss_added_mb": round(status_mb("VmRSS") - before),
            "probe": {k: v.numpy().astype(str).tolist() for k, v in out.items()}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=464_143)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--history", type=int, default=50)
    p.add_argument("--layout", choices=LAYOUTS, help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--step", choices=("save", "load"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        print(json.dumps(_save(args) if args.step == "save" else _load(args)), flush=True)
        return {}
    argv = list(argv if argv is not None else sys.argv[1:])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in LAYOUTS:
            path = os.path.join(tmp, layout)
            row = {}
            for step in ("save", "load"):
                cmd = [sys.executable, os.path.abspath(__file__), "--layout", layout, "--path", path, "--step", step]
                row.update(child_json(cmd + argv, f"{layout} {step}"))
            out[layout] = row
            print(f"[{layout}] {args.users:,} users × {args.history} items: SavedModel {row['saved_mb']:,} MB on "
                  f"disk; loading it adds {row['loaded_rss_added_mb']:,} MB resident", flush=True)
    same = out["positions"].pop("probe") == out["strings"].pop("probe")
    ratio = {k: round(out["strings"][k] / max(out["positions"][k], 1), 2) for k in ("saved_mb", "loaded_rss_added_mb")}
    print(f"strings / positions: {ratio['saved_mb']}x on disk, {ratio['loaded_rss_added_mb']}x resident; "
          f"same answers: {same}")
    if not same:
        raise SystemExit("the two layouts answer differently")
    return {"layouts": out, "ratios_strings_over_positions": ratio}


if __name__ == "__main__":
    main()
