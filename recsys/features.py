"""The one feature registry: every feature, split and vocabulary name lives here.

The pipeline writes two kinds of rows (see ``transform/sequences.py``):

* **sequence rows** (splits ``train``, ``eval``, ``test``): one user, the items
  they interacted with before a target (chronological, with order positions),
  and the target item(s);
* **catalog rows** (split ``catalog``): one item with its content fields.

Everything else (``preprocessing_fn``, the trainer, the exporter, evaluation)
imports names from here instead of spelling literals.
"""
from __future__ import annotations

from dataclasses import dataclass

# --- splits -----------------------------------------------------------------
TRAIN = "train"
EVAL = "eval"
TEST = "test"
CATALOG = "catalog"
SEQUENCE_SPLITS = (TRAIN, EVAL, TEST)
ALL_SPLITS = SEQUENCE_SPLITS + (CATALOG,)

# Interactions that count as positive behaviour. Impressions are exposure, not
# preference, so they never enter histories or targets.
INTERACTION_TYPES = ("click", "like", "cart", "purchase")

# A history is cut to its most recent items for model input; evaluation rows
# keep the full history so that "already seen" masking is exact.
DEFAULT_MAX_HISTORY = 50


@dataclass(frozen=True)
class Feature:
    """A raw tf.Example feature.

    Attributes:
      name: key in the tf.Example.
      dtype: "string", "int64" or "float32".
      varlen: True for variable-length lists, False for exactly one value.
      doc: what the feature holds.
    """

    name: str
    dtype: str
    varlen: bool
    doc: str

    def __post_init__(self) -> None:
        if self.dtype not in ("string", "int64", "float32"):
            raise ValueError(f"Feature {self.name!r}: dtype must be string/int64/float32, got {self.dtype!r}")


USER_ID = Feature("user_id", "string", False, "The user.")
HISTORY_ITEM_ID = Feature(
    "history_item_id", "string", True, "Items interacted with before the target, oldest first.")
HISTORY_ORDER_POS = Feature(
    "history_order_pos", "int64", True,
    "Order position of each history item: items of one order share one position; "
    "positions count the user's orders from 0 (order positional encoding input).")
HISTORY_EVENT_TYPE = Feature("history_event_type", "string", True, "Behaviour of each history item.")
TARGET_ITEM_ID = Feature(
    "target_item_id", "string", True,
    "The target(s): the next interaction (leave-one-out data) or every item of the next order "
    "(basket data). All are positives.")
TARGET_CATEGORY = Feature("target_category", "string", True, "Category path of each target item.")
TARGET_EVENT_TYPE = Feature(
    "target_event_type", "string", True,
    "Behaviour of each target item (its strongest one when a unit holds the item twice: "
    "click < like < cart < purchase).")
TARGET_ORDER_POS = Feature("target_order_pos", "int64", False, "Order position of the target.")
TARGET_TIMESTAMP = Feature("target_timestamp", "int64", False, "Epoch seconds of the target.")

SEQUENCE_FEATURES = (
    USER_ID, HISTORY_ITEM_ID, HISTORY_ORDER_POS, HISTORY_EVENT_TYPE,
    TARGET_ITEM_ID, TARGET_CATEGORY, TARGET_EVENT_TYPE, TARGET_ORDER_POS, TARGET_TIMESTAMP,
)

ITEM_ID = Feature("item_id", "string", False, "The item.")
TITLE = Feature("title", "string", False, "Item title ('' when the data has none).")
DESCRIPTION = Feature("description", "string", False, "Item description.")
CATEGORY = Feature("category", "string", False, "Category path, levels joined by ' > '.")
BRAND = Feature("brand", "string", False, "Brand.")
PRICE = Feature("price", "float32", False, "Price (NaN when unknown).")
CREATED_AT = Feature("created_at", "int64", False,
                     "Epoch seconds from which the item exists (MovieLens: 1 January of the release year); -1 unknown.")

CATALOG_FEATURES = (ITEM_ID, TITLE, DESCRIPTION, CATEGORY, BRAND, PRICE, CREATED_AT)

EMBEDDING = Feature("embedding", "float32", True, "Content embedding of the item (one fixed dimension per run).")
CONTENT_FEATURES = (ITEM_ID, CATEGORY, EMBEDDING)  # rows of the ContentEmbedder's catalog split

CATEGORY_SEPARATOR = " > "

# --- the interaction graph (``transform/graph.py``, the GraphBuilder's artifact) --------------------
EDGES = "edges"                    # split: one row per (user, item, behaviour) of the training events
ITEM_NEIGHBOURS = "item_neighbours"  # split: one row per item with its top-K co-interaction neighbours
GRAPH_SPLITS = (EDGES, ITEM_NEIGHBOURS)
TARGET_BEHAVIOUR = "purchase"      # the behaviour the graph retriever scores (auxiliary ones only teach)
BEHAVIOUR = Feature("behaviour", "string", False, "Behaviour of the edge (one of INTERACTION_TYPES).")
EDGE_COUNT = Feature("edge_count", "int64", False, "Training events of this user, item and behaviour.")
EDGE_RECENCY = Feature(
    "edge_recency", "float32", False,
    "Sum over the edge's events of 2^(-age / half-life), age = the user's later training orders.")
NEIGHBOUR_ITEM_ID = Feature("neighbour_item_id", "string", True, "Top-K item-graph neighbours, best first.")
NEIGHBOUR_WEIGHT = Feature("neighbour_weight", "float32", True, "UltraGCN's omega(i, j) of each neighbour.")
EDGE_FEATURES = (USER_ID, ITEM_ID, BEHAVIOUR, EDGE_COUNT, EDGE_RECENCY)
ITEM_NEIGHBOUR_FEATURES = (ITEM_ID, NEIGHBOUR_ITEM_ID, NEIGHBOUR_WEIGHT)

# --- TF Transform outputs ------------------------------------------------------
ITEM_VOCAB = "item"            # items seen in training, most frequent first
ITEM_FREQ_VOCAB = "item_freq"  # the same items with their training counts
USER_VOCAB = "user"
CATEGORY_VOCAB = "category"
OOV_BUCKETS = 1                # unseen ids map to index == vocabulary size


def transformed_name(name: str) -> str:
    """Name of the TF Transform output derived from raw feature ``name``."""
    return f"{name}_xf"


TARGET_WEIGHT = "target_weight"  # 1 / sqrt(training frequency) per target, from Transform
TARGET_POPULARITY = "target_popularity"  # training count per target, from Transform


def feature_spec(features: tuple[Feature, ...]) -> dict:
    """tf.io parsing spec for a group of raw features."""
    import tensorflow as tf

    dtypes = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}
    return {
        f.name: tf.io.VarLenFeature(dtypes[f.dtype]) if f.varlen else tf.io.FixedLenFeature([], dtypes[f.dtype])
        for f in features
    }
