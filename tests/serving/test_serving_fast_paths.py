"""The server's shortcuts around TensorFlow's per-call Python give TensorFlow's own answers.

``Servable`` calls a signature's ``call_preflattened`` with the inputs in the function type's
order (``servable._FlatCall``) instead of ``fn(**feeds)``; these tests compare both on every
signature of the test models, check the shortcut is really taken, and that a function it does
not fit falls back to ``fn(**feeds)``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from serving import servable as servable_module
from serving.servable import Servable, _FlatCall, new_cancellation

INPUTS = {
    ("retrieval", "serving_default"): {
        "history": np.array([[b"item-1", b"item-2"], [b"item-3", b""]], object),
        "k": np.array([3, 5], np.int32), "exclude": np.array([[b"item-4"], [b""]], object)},
    ("retrieval", "recommend_user"): {
        "user_id": np.array([b"user-0", b"nobody", b"user-3"], object),
        "k": np.array([2, 2, 4], np.int32), "exclude": np.array([[b""], [b"item-1"], [b""]], object)},
    ("toy", "serving_default"): {"x": np.array([[0.5, 1.0, -2.0], [3.0, 0.0, 1.0]], np.float32)},
    ("toy", "bytes_echo"): {"data": np.array([b"ab", b"\xffz", b""], object)},
    ("toy", "sleep"): {"ms": np.array([0, 1], np.int64)},
}


@pytest.fixture(scope="module")
def servables(model_root):
    return {name: Servable(name, 1, os.path.join(model_root, name, "1")).load()
            for name in ("retrieval", "toy")}


@pytest.mark.parametrize("model,signature", sorted(INPUTS))
def test_the_flat_call_is_taken_and_answers_as_the_keyword_call(servables, model, signature):
    servable = servables[model]
    assert isinstance(servable._calls[signature], _FlatCall)
    inputs = INPUTS[(model, signature)]
    prepared = servable.prepare(signature, inputs)
    got = servable.run(prepared, cancellation=new_cancellation())
    fn = servable.functions[signature]
    want = fn(**{name: tf.constant(value, dtype=fn.structured_input_signature[1][name].dtype)
                 for name, value in inputs.items()})
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == want[name].numpy().dtype
        np.testing.assert_array_equal(got[name], want[name].numpy())


def test_the_flat_call_follows_the_function_types_order(servables):
    fn = servables["retrieval"].functions["serving_default"]
    assert servables["retrieval"]._calls["serving_default"].names == \
        list(fn.function_type.parameters) == ["exclude", "history", "k"]


def test_a_function_it_does_not_fit_is_called_with_keywords(model_root, monkeypatch):
    monkeypatch.setattr(servable_module._FlatCall, "create", classmethod(lambda cls, fn: None))
    servable = Servable("toy", 1, os.path.join(model_root, "toy", "1")).load()
    assert not isinstance(servable._calls["serving_default"], _FlatCall)
    _, outputs = servable.predict("serving_default", INPUTS[("toy", "serving_default")])
    np.testing.assert_allclose(outputs["y"], [0.5 * 1.5 - 2.0 - 0.5 + 0.1, 4.5 + 0.25 + 0.1],
                               rtol=1e-6)


def test_only_keyword_only_tensor_parameters_are_flattened():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def positional(x):
        return {"y": x}

    assert _FlatCall.create(positional.get_concrete_function()) is None
    assert _FlatCall.create(lambda **kw: kw) is None
