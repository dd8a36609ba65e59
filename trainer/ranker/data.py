"""The ExposureBuilder's artifact as padded numpy arrays in catalogue-index space.

One row per ranked unit. Candidates keep the merged retriever order
(``transform.exposures.merge``); actions are right-aligned (oldest first, the most
recent last, padding in front) so the most recent tokens are always ``[:, -k:]``.
Index ``num_items`` is padding (and unknown items) everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys import features as F
from transform import examples_io
from transform import exposures as X

ACTION_TYPES = ("",) + F.INTERACTION_TYPES  # 0 = padding
MISSING_CREATED_AT = -1  # recsys.data.contract's value for an unknown creation time


@dataclass(frozen=True)
class ItemTables:
    """Per-item tables in catalogue order, each with one padding/unknown row at index I."""

    content: np.ndarray       # float32 [I + 1, Dc] frozen content embeddings (padding row zeros)
    category: np.ndarray      # int32 [I + 1] category index (num_categories = unknown)
    num_categories: int
    codes: np.ndarray         # int32 [I + 1, L] Semantic-ID codes without the disambiguation code
    code_size: int            # codes per level; ``code_size`` = unknown (padding row, items without an ID)
    created_at: np.ndarray    # int64 [I + 1] epoch seconds, MISSING_CREATED_AT unknown (padding row too)
    brand: np.ndarray | None = None  # int32 [I + 1] brand index (num_brands = unknown); None: no brands
    num_brands: int = 0
    price: np.ndarray | None = None  # float32 [I + 1] (NaN unknown); None: no prices

    def __post_init__(self):
        rows = self.content.shape[0]
        for name in ("category", "codes", "created_at", "brand", "price"):
            if getattr(self, name) is None:
                continue
            if getattr(self, name).shape[0] != rows:
                raise ValueError(f"ItemTables.{name} has {getattr(self, name).shape[0]} rows, content has {rows}")
        if self.codes.ndim != 2 or self.codes.size and (self.codes.min() < 0 or self.codes.max() > self.code_size):
            raise ValueError(f"ItemTables.codes must be [I + 1, L] in 0..{self.code_size}")


@dataclass
class ExposureSet:
    user_ids: list[str]
    items: np.ndarray        # int32 [U, N] candidate positions (pad = num_items)
    features: np.ndarray     # float32 [U, N, F]
    click: np.ndarray        # float32 [U, N]
    conversion: np.ndarray   # float32 [U, N]
    mask: np.ndarray         # bool [U, N] real candidates
    actions: np.ndarray      # int32 [U, A] (pad = num_items)
    action_type: np.ndarray  # int32 [U, A] (0 = pad)
    action_gap: np.ndarray   # int32 [U, A] orders before the unit (0 = pad)
    user_vector: np.ndarray  # float32 [U, D]
    targets: list[np.ndarray]  # catalogue positions of every target (also those outside the candidates)
    request_time: np.ndarray  # int64 [U] epoch seconds of the unit (its target's timestamp)

    def __len__(self) -> int:
        return len(self.user_ids)

    def take(self, rows) -> "ExposureSet":
        rows = np.asarray(rows)
        return ExposureSet([self.user_ids[r] for r in rows], self.items[rows], self.features[rows],
                           self.click[rows], self.conversion[rows], self.mask[rows], self.actions[rows],
                           self.action_type[rows], self.action_gap[rows], self.user_vector[rows],
                           [self.targets[r] for r in rows], self.request_time[rows])


class _Parser:
    """Parses a batch of serialized exposure records into flat numpy arrays (no python object per value):
    ids to catalogue positions by a TF hash table (unknown ids → ``pad`` = ``len(positions)``)."""

    def __init__(self, positions: dict[str, int]):
        import tensorflow as tf

        self.spec = F.feature_spec(X.EXPOSURE_FEATURES)
        self.pad = len(positions)
        self.width = len(X.FEATURE_NAMES)
        ids = list(positions)
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(ids if ids else [""], tf.string),
            tf.constant([positions[i] for i in ids] if ids else [self.pad], tf.int64)), default_value=self.pad)
        self.types = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(ACTION_TYPES)), tf.range(len(ACTION_TYPES), dtype=tf.int64)), default_value=-1)

    def __call__(self, raw) -> dict:
        import tensorflow as tf

        def ragged(sp: tf.SparseTensor, rows: int, values=None) -> tuple[np.ndarray, np.ndarray]:
            """(flat values, row lengths) of a VarLenFeature's sparse tensor (values in row order)."""
            lengths = np.bincount(sp.indices[:, 0].numpy(), minlength=rows).astype(np.int64)
            return (sp.values if values is None else values).numpy(), lengths

        p = tf.io.parse_example(raw, self.spec)
        rows = int(tf.shape(raw)[0])
        cand = p[X.CANDIDATE_ITEM_ID.name]
        act = p[X.ACTION_ITEM_ID.name]
        atype = p[X.ACTION_TYPE.name]
        target = p[F.TARGET_ITEM_ID.name]
        return {"rows": rows, "user_ids": p[F.USER_ID.name].numpy().tolist(),
                "request_time": p[F.TARGET_TIMESTAMP.name].numpy().astype(np.int64),
                "items": ragged(cand, rows, self.table.lookup(cand.values)),
                "features": ragged(p[X.CANDIDATE_FEATURES.name], rows),
                "click": ragged(p[X.LABEL_CLICK.name], rows),
                "conversion": ragged(p[X.LABEL_CONVERSION.name], rows),
                "actions": ragged(act, rows, self.table.lookup(act.values)),
                "action_type": ragged(atype, rows, self.types.lookup(atype.values)),
                "action_gap": ragged(p[X.ACTION_GAP.name], rows),
                "user_vector": ragged(p[X.USER_VECTOR.name], rows),
                "targets": ragged(target, rows, self.table.lookup(target.values))}


def _assemble(batches: list[dict], pad: int, width: int, max_actions: int, max_candidates: int = 0,
              user_dim: int | None = None) -> ExposureSet:
    """Parsed batches (``_Parser``) → one ExposureSet; each batch is freed once written. Candidates are padded to
    the longest unit's (at most ``max_candidates``), user vectors to the longest (or ``user_dim``)."""
    u = sum(b["rows"] for b in batches)
    n = max([int(b["items"][1].max()) for b in batches if b["rows"]] + [1])
    if max_candidates:
        n = min(n, max_candidates)
    d = max([int(b["user_vector"][1].max()) for b in batches if b["rows"]] + [0]) if user_dim is None else user_dim
    items, feats, click, conv, actions, atype, agap, uvec = _padded(u, n, width, max_actions, d, pad)
    user_ids, targets, request_time = [], [], []
    start = 0
    while batches:
        b = batches.pop(0)
        rows = b["rows"]
        r, c, keep = _cells(b["items"][1], start, n)
        items[r, c] = b["items"][0][keep]
        click[r, c] = b["click"][0][keep]
        conv[r, c] = b["conversion"][0][keep]
        f_values, f_lengths = b["features"]
        fr, fc, fkeep = _cells(f_lengths // width, start, n)
        feats[fr, fc] = f_values.reshape(-1, width)[fkeep]
        for name, out in (("actions", actions), ("action_type", atype), ("action_gap", agap)):
            values, lengths = b[name]
            ar, ac, akeep = _cells(lengths, start, max_actions, right=True)
            if name == "action_type" and (values[akeep] < 0).any():  # the former reader's KeyError
                raise KeyError(f"an action type of the exposures is none of {ACTION_TYPES}")
            out[ar, ac] = values[akeep]
        vr, vc, vkeep = _cells(b["user_vector"][1], start, d)
        uvec[vr, vc] = b["user_vector"][0][vkeep]
        t_values, t_lengths = b["targets"]
        known = t_values != pad
        t_rows = np.repeat(np.arange(rows), t_lengths)
        targets.extend(np.split(t_values[known].astype(np.int64),
                                np.cumsum(np.bincount(t_rows[known], minlength=rows))[:-1]))
        user_ids.extend(v.decode("utf-8") for v in b["user_ids"])
        request_time.append(b["request_time"])
        start += rows
    return ExposureSet(user_ids, items, feats, click, conv, items != pad, actions, atype, agap, uvec, targets,
                       np.concatenate(request_time + [np.zeros(0, np.int64)]))


def read_exposures(exposures_uri: str, split: str, positions: dict[str, int], max_actions: int,
                   max_candidates: int = 0, batch_size: int = 1024, users: frozenset[str] | None = None) -> ExposureSet:
    """One split of the exposures artifact; ``positions`` maps item id → catalogue index.

    Parsed with ``tf.io.parse_example`` in batches of ``batch_size`` records, ids mapped to catalogue
    positions by a TF hash table, kept per batch as flat numpy arrays (no python object per value), then
    written into the padded arrays batch by batch, each batch freed once written. The arrays are
    ``read_exposures_lists``' (the former reader, kept for the tests and ``benchmarks/ranker_read_memory.py``),
    element for element; the peak memory is about the padded arrays plus the flat values, where the former
    reader held every value as a python object first. Too large for memory: ``ExposureStream``. With ``users``
    (``examples_io.sampled_users``), only their units.
    """
    parse = _Parser(positions)
    files = examples_io.split_files(exposures_uri, split)
    batches = [parse(raw) for raw in examples_io.record_dataset(files, users).batch(batch_size)]
    return _assemble(batches, parse.pad, parse.width, max_actions, max_candidates)


def split_bytes(exposures_uri: str, split: str) -> int:
    """Bytes on disk (compressed) of one split of the exposures artifact."""
    from transform import fileio

    return sum(fileio.size(f) for f in examples_io.split_files(exposures_uri, split))


class ExposureStream:
    """One split of the exposures artifact, read from its records batch by batch each epoch instead of held in
    memory (``read_exposures`` holds every unit × candidate × feature; at a 1M-item catalogue's units that is
    tens of GB).

    ``batches(epoch)`` yields ExposureSets of ``batch_units`` units: the files in a seeded order, the records
    through a ``shuffle_buffer``-unit shuffle buffer (seeded by ``seed`` and the epoch: the same epoch gives the
    same order), each batch padded to its longest unit's candidates. A full permutation needs every unit at
    once; a buffer mixes within ``shuffle_buffer`` consecutive records, which the ExposureBuilder writes in no
    particular user order. On construction one pass counts the units, exposures and clicks and accumulates the
    features' moments over the real exposures (float64 sums; ``moments()`` equals
    ``training.feature_moments`` on the whole split to float32 rounding), so nothing is held but the sums.
    Memory: the shuffle buffer's serialized records plus one batch.
    """

    def __init__(self, exposures_uri: str, split: str, positions: dict[str, int], max_actions: int,
                 batch_units: int, shuffle_buffer: int = 4096, seed: int = 0, max_candidates: int = 0,
                 read_batch: int = 1024):
        import tensorflow as tf

        self.files = examples_io.split_files(exposures_uri, split)
        self.parse = _Parser(positions)
        self.max_actions, self.max_candidates = max_actions, max_candidates
        self.batch_units, self.shuffle_buffer, self.seed = batch_units, shuffle_buffer, seed
        self.units = self.exposures = self.clicks = self.user_dim = 0
        total = total_sq = None
        for raw in tf.data.TFRecordDataset(self.files, compression_type="GZIP").batch(read_batch):
            b = self.parse(raw)
            if b["rows"]:
                self.user_dim = max(self.user_dim, int(b["user_vector"][1].max()))
            part = _assemble([b], self.parse.pad, self.parse.width, max_actions, max_candidates)
            x = part.features[part.mask].astype(np.float64)
            total = x.sum(axis=0) if total is None else total + x.sum(axis=0)
            total_sq = (x * x).sum(axis=0) if total_sq is None else total_sq + (x * x).sum(axis=0)
            self.units += len(part)
            self.exposures += int(part.mask.sum())
            self.clicks += int(part.click[part.mask].sum())
        if not self.exposures:
            raise ValueError(f"{exposures_uri} split {split!r} holds no exposure of a catalogue item")
        self._mean = total / self.exposures
        self._std = np.sqrt(np.maximum(total_sq / self.exposures - self._mean ** 2, 0.0))

    def __len__(self) -> int:
        return self.units

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        return self._mean.astype(np.float32), self._std.astype(np.float32)

    def batches(self, epoch: int):
        import tensorflow as tf

        rng = np.random.default_rng([self.seed, epoch])
        files = [self.files[i] for i in rng.permutation(len(self.files))]
        ds = tf.data.TFRecordDataset(files, compression_type="GZIP").shuffle(
            self.shuffle_buffer, seed=int(rng.integers(2 ** 31)), reshuffle_each_iteration=False)
        for raw in ds.batch(self.batch_units):
            yield _assemble([self.parse(raw)], self.parse.pad, self.parse.width, self.max_actions,
                            self.max_candidates, user_dim=self.user_dim)


def training_exposures(exposures_uri: str, positions: dict[str, int], config) -> tuple:
    """(the train split, held or streamed as ``config.stream_above_mb`` says, and what it holds: units, exposures,
    clicks, user_dim, on_disk_mb, how) for ``RankerTrainer``; ``config`` is a ``RankerConfig``."""
    on_disk = split_bytes(exposures_uri, "train") / 2 ** 20
    if on_disk > config.stream_above_mb:  # too large to hold: the records are read again each epoch
        data = ExposureStream(exposures_uri, "train", positions, config.actions, config.batch_size,
                              config.shuffle_buffer, config.seed)
        about = {"units": len(data), "exposures": data.exposures, "clicks": data.clicks, "user_dim": data.user_dim,
                 "how": f"streamed ({on_disk:.1f} MB of records > stream_above_mb {config.stream_above_mb:g})"}
    else:
        data = read_exposures(exposures_uri, "train", positions, config.actions)
        about = {"units": len(data), "exposures": int(data.mask.sum()), "clicks": int(data.click.sum()),
                 "user_dim": int(data.user_vector.shape[1]), "how": "in memory"}
    return data, dict(about, on_disk_mb=round(on_disk, 3), streamed=isinstance(data, ExposureStream))


def _padded(units: int, n: int, width: int, max_actions: int, d: int, pad: int) -> tuple:
    """The readers' empty padded arrays: items, features, click, conversion [units, n(, width)], actions,
    action types, action gaps [units, max_actions], user vectors [units, d]; item slots hold ``pad``."""
    return (np.full((units, n), pad, np.int32), np.zeros((units, n, width), np.float32),
            np.zeros((units, n), np.float32), np.zeros((units, n), np.float32),
            np.full((units, max_actions), pad, np.int32), np.zeros((units, max_actions), np.int32),
            np.zeros((units, max_actions), np.int32), np.zeros((units, d), np.float32))


def _cells(lengths: np.ndarray, start: int, width: int, right: bool = False):
    """(rows, columns, kept) of a flat ragged batch's values in a ``[*, width]`` array from row ``start``:
    the first ``width`` values of each row from column 0, or with ``right`` the last ``width`` right-aligned
    (its last value in the last column)."""
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    pos = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # within row
    if right:
        col = pos - lengths[rows] + width
        keep = col >= 0
    else:
        col = pos
        keep = col < width
    return rows[keep] + start, col[keep], keep


def read_exposures_lists(exposures_uri: str, split: str, positions: dict[str, int], max_actions: int,
                         max_candidates: int = 0) -> ExposureSet:
    """The former reader (every value a python object first, then the padded arrays), kept as the reference of
    ``read_exposures``' equality test and the before of ``benchmarks/ranker_read_memory.py``."""
    cols = examples_io.read_examples(examples_io.split_files(exposures_uri, split),
                                     F.feature_spec(X.EXPOSURE_FEATURES))
    pad = len(positions)
    width = len(X.FEATURE_NAMES)
    u = len(cols[F.USER_ID.name])
    cand = [examples_io._decode(c) for c in cols[X.CANDIDATE_ITEM_ID.name]]
    n = max([len(c) for c in cand] + [1])
    if max_candidates:
        n = min(n, max_candidates)
    dims = {len(v) for v in cols[X.USER_VECTOR.name]}
    d = max(dims) if dims else 0
    items, feats, click, conv, actions, atype, agap, uvec = _padded(u, n, width, max_actions, d, pad)
    type_index = {t: i for i, t in enumerate(ACTION_TYPES)}
    for r in range(u):
        c = cand[r][:n]
        m = len(c)
        items[r, :m] = [positions.get(i, pad) for i in c]
        feats[r, :m] = np.asarray(cols[X.CANDIDATE_FEATURES.name][r], np.float32).reshape(-1, width)[:m]
        click[r, :m] = cols[X.LABEL_CLICK.name][r][:m]
        conv[r, :m] = cols[X.LABEL_CONVERSION.name][r][:m]
        a = examples_io._decode(cols[X.ACTION_ITEM_ID.name][r])[-max_actions:]
        t = examples_io._decode(cols[X.ACTION_TYPE.name][r])[-max_actions:]
        g = np.asarray(cols[X.ACTION_GAP.name][r])[-max_actions:]
        if a:
            actions[r, -len(a):] = [positions.get(i, pad) for i in a]
            atype[r, -len(a):] = [type_index[x] for x in t]
            agap[r, -len(a):] = g
        v = np.asarray(cols[X.USER_VECTOR.name][r], np.float32)
        uvec[r, :len(v)] = v
    targets = [np.array([positions[t] for t in examples_io._decode(ts) if t in positions], np.int64)
               for ts in cols[F.TARGET_ITEM_ID.name]]
    return ExposureSet(examples_io._decode(cols[F.USER_ID.name]), items, feats, click, conv, items != pad,
                       actions, atype, agap, uvec, targets, np.asarray(cols[F.TARGET_TIMESTAMP.name], np.int64))


def sample_training(data: ExposureSet, negatives: int, rng: np.random.Generator, pad: int) -> ExposureSet:
    """Each unit's positives plus ``negatives`` uniformly drawn negatives (fresh each call), padded with ``pad``."""
    rows = []
    for r in range(len(data)):
        real = np.flatnonzero(data.mask[r])
        pos = real[data.click[r, real] > 0]
        neg = real[data.click[r, real] == 0]
        if len(neg) > negatives:
            neg = rng.choice(neg, negatives, replace=False)
        rows.append(np.concatenate([pos, neg]))
    n = max([len(x) for x in rows] + [1])
    u = len(data)
    out_items = np.full((u, n), pad, np.int32)
    out_feats = np.zeros((u, n, data.features.shape[2]), np.float32)
    out_click = np.zeros((u, n), np.float32)
    out_conv = np.zeros((u, n), np.float32)
    out_mask = np.zeros((u, n), bool)
    for r, cols in enumerate(rows):
        m = len(cols)
        out_items[r, :m] = data.items[r, cols]
        out_feats[r, :m] = data.features[r, cols]
        out_click[r, :m] = data.click[r, cols]
        out_conv[r, :m] = data.conversion[r, cols]
        out_mask[r, :m] = True
    return ExposureSet(data.user_ids, out_items, out_feats, out_click, out_conv, out_mask, data.actions,
                       data.action_type, data.action_gap, data.user_vector, data.targets, data.request_time)


@dataclass(frozen=True)
class CatalogueTables:
    """The catalogue as the ranker sees it: ids, positions, the model's item tables and popularity."""

    item_ids: np.ndarray       # str [I]
    positions: dict[str, int]
    items: ItemTables          # content, category, Semantic-ID codes, creation time (+ a padding row)
    categories: list[str]      # category vocabulary (index len = unknown)
    popularity: np.ndarray     # int64 [I] training interactions per item


def catalogue_tables(examples_uri: str, content_uri: str, semantic_ids_tsv: str | None) -> CatalogueTables:
    """Tables for the catalogue of ``examples_uri``; ``semantic_ids_tsv``: the content space's Semantic-ID table.

    Without a table (``None``) every item's codes are "unknown" (a config with
    ``semantic_ids=True`` then learns nothing from them: ``train`` refuses that). A catalogue
    item missing from a given table is an error, as in the dual head.
    """
    from trainer.graph.data import catalogue_content

    catalog = examples_io.read_catalog(examples_uri)
    ids = catalog.item_ids
    vectors = catalogue_content(examples_uri, content_uri)
    content = np.concatenate([vectors, np.zeros((1, vectors.shape[1]), np.float32)]).astype(np.float32)
    cats = sorted(set(catalog.categories.tolist()))
    cat_index = {c: i for i, c in enumerate(cats)}
    item_category = np.array([cat_index[c] for c in catalog.categories.tolist()] + [len(cats)], np.int32)
    positions = {i: k for k, i in enumerate(ids.tolist())}
    training = examples_io.training_item_counts(examples_uri)
    counts = np.array([training.get(i, 0) for i in ids.tolist()], np.int64)
    codes, code_size = semantic_codes(ids.tolist(), semantic_ids_tsv)
    created = np.append(np.asarray(catalog.created_at, np.int64), MISSING_CREATED_AT)
    brand, brands = brand_table(catalog.brands.tolist())
    prices = np.asarray(catalog.prices, np.float32)
    price = np.append(prices, np.nan).astype(np.float32) if np.isfinite(prices).any() else None
    items = ItemTables(content, item_category, len(cats), codes, code_size, created, brand, len(brands), price)
    return CatalogueTables(ids, positions, items, cats, counts)


def brand_table(brands: list[str]) -> tuple[np.ndarray | None, list[str]]:
    """(brand index int32 [I + 1] with ``len(vocabulary)`` = unknown, vocabulary); ``(None, [])`` when no
    item has a brand (MovieLens, Instacart): the model then has no brand embedding at all."""
    vocab = sorted({b for b in brands if b})
    if not vocab:
        return None, []
    index = {b: i for i, b in enumerate(vocab)}
    return np.array([index.get(b, len(vocab)) for b in brands] + [len(vocab)], np.int32), vocab


def semantic_codes(item_ids: list[str], semantic_ids_tsv: str | None) -> tuple[np.ndarray, int]:
    """(codes int32 [I + 1, L], code_size): the first L codes of each item's Semantic ID (the
    disambiguation code is dropped: it tells colliding items apart, it carries no content), the
    padding row ``code_size`` ("unknown") at every level. ``(zeros [I + 1, 0], 0)`` without a table."""
    if semantic_ids_tsv is None:
        return np.zeros((len(item_ids) + 1, 0), np.int32), 0
    from trainer.semantic_ids import SemanticIdTable

    table = SemanticIdTable.load(semantic_ids_tsv)
    missing = [i for i in item_ids if i not in table]
    if missing:
        raise ValueError(f"{len(missing)} catalogue items have no Semantic ID (first: {missing[:5]}); "
                         "rebuild the content space for this catalogue")
    codes = np.array([table.id_of(i)[:-1] for i in item_ids], np.int64).reshape(len(item_ids), table.id_length - 1)
    code_size = int(codes.max()) + 1 if codes.size else 0
    return np.concatenate([codes, np.full((1, codes.shape[1]), code_size)]).astype(np.int32), code_size
