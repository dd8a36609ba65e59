"""The served contract: every name that crosses a layer, in one module that imports nothing.

Evaluation protocols, served model names, signature names and tensor names are
spelled here once and imported by the exports, the pipeline, the evaluators,
the client and the CLI. ``tests/integration/test_exported_models.py`` loads every exported
SavedModel in a fresh process and checks its signatures against :data:`SIGNATURES`.

Nothing here may import anything (not even the standard library): the client
and light tools import it without TensorFlow or Beam.
"""

# --- evaluation protocols (how a user's events are cut into train/validation/test) --------------
LEAVE_ONE_OUT = "leave_one_out"                # one interaction per unit (MovieLens, RecBole's protocol)
LEAVE_LAST_ORDER_OUT = "leave_last_order_out"  # one order (basket) per unit (Instacart)
PROTOCOLS = (LEAVE_ONE_OUT, LEAVE_LAST_ORDER_OUT)
PROTOCOL_FILE = "protocol.txt"  # written by the example generator beside its splits

# --- served models (directory names under serving/, model names on the server) ------------------
RETRIEVAL = "retrieval"                                  # two-tower, ScaNN index inside
RETRIEVAL_BRUTE_FORCE = "retrieval_bruteforce"           # its exact twin, stock TF ops only
ITEM_ENCODER = "item_encoder"                            # text / embedding -> Semantic ID
DUAL_RETRIEVAL = "dual_retrieval"                        # dual-head student, ScaNN index inside
DUAL_RETRIEVAL_BRUTE_FORCE = "dual_retrieval_bruteforce"  # its exact twin
GENERATIVE = "generative"                                # dual-head teacher, constrained beam search
GRAPH_RETRIEVAL = "graph_retrieval"                      # multi-behaviour graph retriever, ScaNN index inside
GRAPH_RETRIEVAL_BRUTE_FORCE = "graph_retrieval_bruteforce"  # its exact twin
SEQUENTIAL_RETRIEVAL = "sequential_retrieval"            # SASRec-style sequence model, ScaNN index inside
SEQUENTIAL_RETRIEVAL_BRUTE_FORCE = "sequential_retrieval_bruteforce"  # its exact twin
RANKER = "ranker"                                        # second stage: candidates -> pCTR, pCVR, pCTCVR, score
SERVED_MODELS = (RETRIEVAL, RETRIEVAL_BRUTE_FORCE, ITEM_ENCODER, DUAL_RETRIEVAL, DUAL_RETRIEVAL_BRUTE_FORCE,
                 GENERATIVE, GRAPH_RETRIEVAL, GRAPH_RETRIEVAL_BRUTE_FORCE, SEQUENTIAL_RETRIEVAL,
                 SEQUENTIAL_RETRIEVAL_BRUTE_FORCE, RANKER)
#: every ScaNN model and its brute-force twin (stock TF Serving serves only the twin)
BRUTE_FORCE_TWINS = {RETRIEVAL: RETRIEVAL_BRUTE_FORCE, DUAL_RETRIEVAL: DUAL_RETRIEVAL_BRUTE_FORCE,
                     GRAPH_RETRIEVAL: GRAPH_RETRIEVAL_BRUTE_FORCE, SEQUENTIAL_RETRIEVAL: SEQUENTIAL_RETRIEVAL_BRUTE_FORCE}
#: ``model_name="auto"`` in the client: the first of these the server has
DEFAULT_RETRIEVAL_MODELS = (DUAL_RETRIEVAL, RETRIEVAL)

# --- signature names -----------------------------------------------------------------------------
SERVING_DEFAULT = "serving_default"
RECOMMEND_USER = "recommend_user"      # a user id -> items (the user's latest history lives in the model)
RECOMMEND_ORDERS = "recommend_orders"  # history + order positions -> items (basket-aware models)
RECOMMEND_SESSION = "recommend_session"  # user id + recently clicked items -> items (session shift)
USER_VECTOR = "user_vector"            # user id -> the user's query vector (every retriever)
RECOMMEND_VECTOR = "recommend_vector"  # query vector -> items (the client's feedback-updated user vector)
USER_EMBEDDING = "user_embedding"
ITEM_EMBEDDING = "item_embedding"
EMBED_CONTENT = "embed_content"        # content vector -> item embedding (cold-start items)
ENCODE_TEXT = "encode_text"
ENCODE_EMBEDDING = "encode_embedding"
LOOKUP = "lookup"

# --- tensor names --------------------------------------------------------------------------------
HISTORY = "history"      # string [B, L], "" padded, oldest first
ORDER_POS = "order_pos"  # int64 [B, L], order position of each history item
K = "k"                  # int32 [B]
EXCLUDE = "exclude"      # string [B, E], "" padded
RECENT_ITEMS = "recent_items"      # string [B, R], "" padded: items clicked in this session
SESSION_WEIGHT = "session_weight"  # float32 [B]: weight of the recent items (< 0: the model's default)
USER_ID = "user_id"      # string [B]
ITEM_ID = "item_id"      # string [B]
CONTENT = "content"      # float32 [B, D] content embedding
EMBEDDING = "embedding"  # float32 [B, D]
TITLE, DESCRIPTION, CATEGORY, BRAND = "title", "description", "category", "brand"
ITEM_TEXT_FIELDS = (TITLE, DESCRIPTION, CATEGORY, BRAND)
ITEM_IDS = "item_ids"        # string [B, K], "" where fewer than K items exist
SCORES = "scores"            # float32 [B, K] (log-likelihoods for the generative model)
SEMANTIC_ID = "semantic_id"  # int32 [B, L + 1], codes then the disambiguation code

_RECOMMEND_OUT = (ITEM_IDS, SCORES)
_RECOMMEND_HISTORY = ((HISTORY, K, EXCLUDE), _RECOMMEND_OUT)
_RECOMMEND_ORDERS = ((HISTORY, ORDER_POS, K, EXCLUDE), _RECOMMEND_OUT)
_RECOMMEND_USER = ((USER_ID, K, EXCLUDE), _RECOMMEND_OUT)
_RETRIEVAL = {
    SERVING_DEFAULT: _RECOMMEND_HISTORY,
    RECOMMEND_USER: _RECOMMEND_USER,
    RECOMMEND_VECTOR: ((EMBEDDING, K, EXCLUDE), _RECOMMEND_OUT),
    USER_VECTOR: ((USER_ID,), (EMBEDDING,)),
    USER_EMBEDDING: ((HISTORY,), (EMBEDDING,)),
    ITEM_EMBEDDING: ((ITEM_ID,), (EMBEDDING,)),
}
_DUAL_RETRIEVAL = dict(_RETRIEVAL, **{RECOMMEND_ORDERS: _RECOMMEND_ORDERS,
                                      EMBED_CONTENT: ((CONTENT,), (EMBEDDING,))})

_GRAPH_RETRIEVAL = dict(_RETRIEVAL, **{
    RECOMMEND_SESSION: ((USER_ID, RECENT_ITEMS, SESSION_WEIGHT, K, EXCLUDE), _RECOMMEND_OUT),
    EMBED_CONTENT: ((CONTENT,), (EMBEDDING,))})

#: model -> signature -> (input tensor names, output tensor names). The item encoder of a
#: text-trained catalogue adds ``ENCODE_TEXT`` (and makes it its ``serving_default``):
#: see :data:`ITEM_ENCODER_TEXT_SIGNATURES`.
SIGNATURES = {
    RETRIEVAL: _RETRIEVAL,
    RETRIEVAL_BRUTE_FORCE: _RETRIEVAL,
    DUAL_RETRIEVAL: _DUAL_RETRIEVAL,
    DUAL_RETRIEVAL_BRUTE_FORCE: _DUAL_RETRIEVAL,
    GRAPH_RETRIEVAL: _GRAPH_RETRIEVAL,
    GRAPH_RETRIEVAL_BRUTE_FORCE: _GRAPH_RETRIEVAL,
    # the SASRec-style model: the two-tower's signatures exactly (items are free IDs, so no content path
    # for cold items; positions count items, so no order positions to send)
    SEQUENTIAL_RETRIEVAL: _RETRIEVAL,
    SEQUENTIAL_RETRIEVAL_BRUTE_FORCE: _RETRIEVAL,
    GENERATIVE: {SERVING_DEFAULT: _RECOMMEND_HISTORY, RECOMMEND_ORDERS: _RECOMMEND_ORDERS,
                 RECOMMEND_USER: _RECOMMEND_USER},
    ITEM_ENCODER: {SERVING_DEFAULT: ((EMBEDDING,), (SEMANTIC_ID,)),
                   ENCODE_EMBEDDING: ((EMBEDDING,), (SEMANTIC_ID,)),
                   LOOKUP: ((ITEM_ID,), (SEMANTIC_ID,))},
}
ITEM_ENCODER_TEXT_SIGNATURES = dict(SIGNATURES[ITEM_ENCODER], **{
    SERVING_DEFAULT: (ITEM_TEXT_FIELDS, (EMBEDDING, SEMANTIC_ID)),
    ENCODE_TEXT: (ITEM_TEXT_FIELDS, (EMBEDDING, SEMANTIC_ID)),
})

# --- files inside exported models and artifacts ----------------------------------------------------
SERVING_SUBDIR = "Format-Serving"    # where TFX's Pusher looks for a model inside a Model artifact
WARMUP_FILE = "tf_serving_warmup_requests"  # assets.extra/<this>, replayed by TF Serving at load

# --- the ranker (second stage: ``export/ranker.py``) -------------------------------------------------
RANK = "rank"                              # its signature (also its serving_default)
HISTORY_TYPES = "history_types"            # string [B, H]: behaviour of each history item
HISTORY_GAPS = "history_gaps"              # int64 [B, H]: orders before the request (1 = the latest order)
REQUEST_TIME = "request_time"              # int64 [B]: epoch seconds of the request (<= 0: unknown, no item age)
CANDIDATES = "candidates"                  # string [B, N], "" padded
RETRIEVAL_FEATURES = "retrieval_features"  # float32 [B, N, 3 S]: per source retrieved 0/1, score, 1/rank
#: the candidate sources whose features ``retrieval_features`` carries, in this order, 3 values each:
#: graph = graph_retrieval's recommend_user, two_tower = retrieval's serving_default (history),
#: student = dual_retrieval's recommend_orders (history with order positions; all zeros where the ranker was
#: trained without it), repeat = the user's own items by count then recency (score log1p(count)),
#: popularity (score log1p(count))
RANKER_SOURCES = ("graph", "two_tower", "student", "repeat", "popularity")
RANKER_SOURCE_FEATURES = ("in", "score", "rrank")
PCTR, PCVR, PCTCVR, SCORE = "pctr", "pcvr", "pctcvr", "score"  # float32 [B, N]
#: the behaviour a history item is sent with when the caller gives none (``recsys.features.TARGET_BEHAVIOUR``,
#: spelled here for the client distribution, which ships without ``recsys.features``)
TARGET_BEHAVIOUR = "purchase"
_RANK = ((USER_ID, HISTORY, HISTORY_TYPES, HISTORY_GAPS, REQUEST_TIME, CANDIDATES, RETRIEVAL_FEATURES),
         (PCTR, PCVR, PCTCVR, SCORE))
SIGNATURES[RANKER] = {RANK: _RANK, SERVING_DEFAULT: _RANK}
