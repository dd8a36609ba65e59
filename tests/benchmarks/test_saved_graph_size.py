"""benchmarks/saved_graph_size.py reads a serving directory's newest versions and finds the graph's constants."""
import json

import numpy as np
import tensorflow as tf


def test_it_lists_each_models_newest_version_and_its_largest_constant(tmp_path):
    from benchmarks import saved_graph_size

    class Model(tf.Module):
        def __init__(self, rows):
            super().__init__()
            self.table = tf.constant(np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32))  # in the graph
            self.vector = tf.Variable(np.ones((rows, 8), np.float32))    # in variables/
            self.serve = tf.function(lambda i: {"out": tf.gather(self.table, i) + tf.gather(self.vector, i)},
                                     input_signature=[tf.TensorSpec([None], tf.int32)])

    for version, rows in (("1", 10), ("2", 1000)):
        m = Model(rows)
        tf.saved_model.save(m, str(tmp_path / "serving" / "m" / version), signatures={"serving_default": m.serve})
    (tmp_path / "serving" / "models.config").write_text("")  # not a model: skipped
    out = tmp_path / "sizes.json"
    assert saved_graph_size.main(["--serving", str(tmp_path / "serving"), "--output", str(out)]) == 0
    got = json.loads(out.read_text())["models"]
    assert list(got) == ["m"] and got["m"]["version"] == "2"
    assert got["m"]["largest_constants"][0] == {"bytes": 32000, "shape": [1000, 8], "dtype": "DT_FLOAT"}
    assert got["m"]["saved_model_pb_bytes"] > 32000 and got["m"]["variables_bytes"] > 32000
