"""The multi-stage recommender a backend imports: retrieval fan-out → ranking → re-ranking → feedback.

Part of the client distribution (``pip install "./clients/python[redis]"``; no TensorFlow); the full
stack re-exports it as ``serving.multistage``::

    from commerce_recsys_client import ItemTable, RecommenderClient, Recommender, RedisStore, RequestContext

    rec = Recommender(RecommenderClient("localhost:8501"), ItemTable.read("items.tsv"),
                      store=RedisStore.from_url("redis://cache:6379/0"))
    response = rec.recommend("42", k=10, context=RequestContext(history=[...]))
    rec.feedback("42", impressions=[i.item_id for i in response.items], clicks=["50"],
                 request_id=response.request_id)

Stages (DESIGN.md §6–8), each timed in ``response.timings_ms``:

1. **state**: the user's feedback offsets, ignored-impression counts, recent clicks and bought
   items from the store (:mod:`commerce_recsys_client.store`). A store failure is reported, never fatal.
2. **retrieval**: concurrently, every served retriever (``model_status`` AVAILABLE; a ScaNN model
   is used instead of its brute-force twin when both are up; ``generative`` only when configured)
   — through ``recommend_vector`` with ``q = u + δ`` when the user has a feedback offset for that
   model, else ``recommend_user`` — plus the user's own **repeat** candidates (history and recent
   clicks, by count then recency) and **popularity** from the local item table. Each source takes
   its quota; a retriever that fails or misses the deadline is skipped and reported.
3. **merge**: dedup with per-item attribution (source → rank, score) and reciprocal-rank fusion
   (Cormack et al., 2009): ``merge(i) = Σ_s w_s / (rrf_k + rank_s(i))``, ``rrf_k`` = 60, weights
   per source (default 1).
4. **ranking**: a pluggable :class:`Ranker` scores the merged candidates. By default (``ranker="auto"``)
   the served ``ranker`` model does (``commerce_recsys_client.ranking.ServedRanker``) whenever the
   server has it available (looked up like the retrievers, cached ``discovery_ttl_s``); without one
   (``ranker=None``, or no served ranker), or when it fails (reported), the merge order stands.
5. **re-ranking**: ``commerce_recsys_client.rerank`` policies, then the cut to ``k``.

Every response carries ``request_id``, the experiment arm, each item's sources, stage scores and
placing rule, per-source status and every fallback taken. With an :class:`~commerce_recsys_client.experiments.EventLog`
the exposures are logged; :meth:`Recommender.feedback` logs the responses.
"""
from __future__ import annotations

import math
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from commerce_recsys_client import feedback as fb
from commerce_recsys_client import names as N
from commerce_recsys_client import rerank as R
from commerce_recsys_client.client import RecommenderClient, ServingError
from commerce_recsys_client.experiments import CLICK, EXPOSURE, PURCHASE, EventLog, Experiment, event
from commerce_recsys_client.items import ItemTable
from commerce_recsys_client.store import STORE_ERRORS, Store, UserState

REPEAT, POPULARITY = "repeat", "popularity"
#: retrievers the fan-out considers, in order; brute-force twins only when their ScaNN model is down.
#: ``sequential_retrieval`` (the SASRec-style model, pushed only when it beats the two-tower on validation)
#: has no slot of its own in the ranker's ``retrieval_features``: its candidates are merged and ranked on
#: the features of the sources they share (``commerce_recsys_client.ranking``)
RETRIEVERS = (N.GRAPH_RETRIEVAL, N.DUAL_RETRIEVAL, N.SEQUENTIAL_RETRIEVAL, N.RETRIEVAL)
AUTO = "auto"  # Recommender(ranker=AUTO): the served ``ranker`` model when the server has it
MAX_ID_CHARS = 256
MAX_HISTORY = 1000
MAX_FEEDBACK_ITEMS = 1000
OK, FAILED, TIMEOUT = "ok", "failed", "timeout"


class BadRequest(ValueError):
    """An input the Recommender refuses; the message says what was received and what is allowed."""


_CONTROL = re.compile("[\x00-\x1f]")  # characters below 32


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string, got {value!r} ({type(value).__name__})")
    if not value.strip():
        raise BadRequest(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_CHARS:
        raise BadRequest(f"{what} is {len(value)} characters long; at most {MAX_ID_CHARS} are allowed")
    if _CONTROL.search(value):
        raise BadRequest(f"{what} contains control characters: {value!r}")
    return value


def check_ids(values: Any, what: str, limit: int) -> list[str]:
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise BadRequest(f"{what} must be a list of item ids, got {type(values).__name__}: {values!r:.80}")
    if len(values) > limit:
        raise BadRequest(f"{what} has {len(values)} items; at most {limit} are allowed")
    return [check_id(v, f"{what}[{i}]") for i, v in enumerate(values)]


@dataclass(frozen=True)
class RequestContext:
    """What the caller knows at request time: the user's ``history`` (oldest first; the repeat
    source), ``exclude`` (sent to the retrievers), ``blocked`` (the exclusion rule), ``request_time``
    (UNIX seconds; default now)."""

    history: Sequence[str] = ()
    exclude: Sequence[str] = ()
    blocked: Sequence[str] = ()
    request_time: float | None = None


@dataclass(frozen=True)
class Config:
    """``quotas``: source -> candidates taken (``default_quota`` for retrievers not named);
    ``weights``: source -> RRF weight (default 1); ``deadline_s``: the retrieval fan-out's wait;
    ``ranker_deadline_s``: the ranking stage's (past it: the merge order, reported)."""

    quotas: Mapping[str, int] = field(default_factory=dict)
    default_quota: int = 100
    repeat_quota: int = 20
    popularity_quota: int = 50
    weights: Mapping[str, float] = field(default_factory=dict)
    rrf_k: float = 60.0
    max_k: int = 100
    deadline_s: float = 2.0
    ranker_deadline_s: float = 2.0
    retrievers: Sequence[str] = RETRIEVERS
    discovery_ttl_s: float = 30.0
    use_feedback: bool = True

    def __post_init__(self):
        for name in ("default_quota", "repeat_quota", "popularity_quota", "max_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "max_k" else 0):
                raise ValueError(f"{name} must be an int >= {1 if name == 'max_k' else 0}, got {value!r}")
        for source, q in self.quotas.items():
            if isinstance(q, bool) or not isinstance(q, int) or q < 0:
                raise ValueError(f"quota of {source!r} must be an int >= 0, got {q!r}")
        for source, w in self.weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < math.inf:
                raise ValueError(f"weight of {source!r} must be a finite number >= 0, got {w!r}")
        for name in ("deadline_s", "ranker_deadline_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.rrf_k, (int, float)) or not 0 <= self.rrf_k < math.inf:
            raise ValueError(f"rrf_k must be a finite number >= 0, got {self.rrf_k!r}")

    def quota(self, source: str) -> int:
        default = {REPEAT: self.repeat_quota, POPULARITY: self.popularity_quota}.get(source, self.default_quota)
        return int(self.quotas.get(source, default))


# --------------------------------------------------------------------------- ranking stage

@dataclass(frozen=True)
class RankRequest:
    """One user's candidates for the ranker.

    ``recent_actions``: (item id, "click", request time) newest first, the store's recent clicks (kept
    without their own times); ``candidate_ids`` [N];
    ``features``: name -> float32 [N], for every source ``<source>_score`` and ``<source>_rank``
    (1-based; 0 and score 0 where the source did not return the item) and ``merge`` (the RRF score);
    ``user_vectors``: model -> the query vector used (feedback-updated where the user has an offset).
    """

    user_id: str
    recent_actions: tuple
    request_time: float
    candidate_ids: tuple
    features: Mapping[str, np.ndarray]
    user_vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    history: tuple = ()  # the caller's (``RequestContext.history``), oldest first


class Ranker(Protocol):
    def rank(self, request: RankRequest) -> Mapping[str, np.ndarray]:
        """-> {"score": float [N], optional "pctr", "pcvr", "pctcvr": float [N]}; higher is better."""


class ClientRanker:
    """Adapts the served ranker's batched call (``rank_fn``: e.g. ``RecommenderClient.rank``) to :class:`Ranker`.

    ``rank_fn(user_ids=[B], recent_actions=[B] lists of (item, action, time), request_time=[B],
    candidate_ids=[B][N], features={name: [B, N]})`` -> {"pctr", "pcvr", "pctcvr", "score": [B, N]};
    called with B = 1.
    """

    def __init__(self, rank_fn: Callable[..., Mapping[str, Any]]):
        self.rank_fn = rank_fn

    def rank(self, request: RankRequest) -> Mapping[str, np.ndarray]:
        out = self.rank_fn(user_ids=[request.user_id], recent_actions=[list(request.recent_actions)],
                           request_time=[request.request_time], candidate_ids=[list(request.candidate_ids)],
                           features={k: np.asarray(v, np.float32)[None, :] for k, v in request.features.items()})
        return {k: np.asarray(v, np.float64)[0] for k, v in out.items()}


# --------------------------------------------------------------------------- responses

@dataclass(frozen=True)
class RankedItem:
    item_id: str
    position: int
    sources: Mapping[str, Mapping[str, float]]  # source -> {"rank", "score"}
    scores: Mapping[str, float]                 # stage -> score
    rule: str                                   # what placed it: "score", "mmr", "novelty", "ad_slot", ...


@dataclass(frozen=True)
class SourceReport:
    status: str          # ok | failed | timeout
    count: int = 0
    ms: float = 0.0
    query: str = ""      # recommend_user | recommend_vector | repeat | popularity
    error: str = ""


@dataclass(frozen=True)
class Response:
    request_id: str
    user_id: str
    arm: str | None
    items: list
    sources: Mapping[str, SourceReport]
    fallbacks: list
    timings_ms: Mapping[str, float]
    ranker: str          # "merge" (no ranker), "ranker", or "merge (ranker failed)"
    rules: list

    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]


@dataclass(frozen=True)
class FeedbackResult:
    stored: bool
    updated: list                     # models whose offset changed
    skipped: Mapping[str, str]        # model -> why it got no update
    dropped_reason: str = ""          # why the store did not take the round (stored is False)


# --------------------------------------------------------------------------- the recommender

@dataclass(frozen=True)
class _Retriever:
    model: str
    vector: bool  # has user_vector + recommend_vector + item_embedding
    session: bool = False  # has recommend_session (session shift toward recent clicks, in the model)


class Recommender:
    def __init__(self, client: RecommenderClient, items: ItemTable, *, store: Store | None = None,
                 config: Config | None = None, ranker: Ranker | str | None = "auto",
                 policies: R.RerankPipeline | None = None, rule: fb.FeedbackRule | None = None,
                 experiment: Experiment | None = None, arm_settings: Mapping[str, Mapping[str, Any]] | None = None,
                 event_log: EventLog | None = None, workers: int = 8):
        """``ranker``: a :class:`Ranker`, ``None`` (the merge order) or ``"auto"`` (the served ``ranker``
        model when the server has it, else the merge order).
        ``arm_settings``: arm -> overrides for that arm's requests: ``use_feedback`` (bool),
        ``policies`` (a RerankPipeline), ``ranker`` (a Ranker, "auto" or None)."""
        for where, r in [("ranker", ranker)] + [(f"arm_settings[{a!r}]['ranker']", s["ranker"])
                                                 for a, s in (arm_settings or {}).items() if "ranker" in s]:
            if isinstance(r, str) and r != AUTO:
                raise ValueError(f"{where} must be a Ranker, {AUTO!r} or None, got {r!r}")
        self.client = client
        self.items = items
        self.store = store
        self.config = config or Config()
        self.ranker = ranker
        self.policies = policies if policies is not None else R.default_pipeline()
        self.rule = rule or fb.FeedbackRule()
        self.experiment = experiment
        self.arm_settings = dict(arm_settings or {})
        unknown = {k for s in self.arm_settings.values() for k in s} - {"use_feedback", "policies", "ranker"}
        if unknown:
            raise ValueError(f"unknown arm settings {sorted(unknown)}; allowed: use_feedback, policies, ranker")
        if experiment is not None and set(self.arm_settings) - set(experiment.splits):
            raise ValueError(f"arm settings for arms not in the experiment: "
                             f"{sorted(set(self.arm_settings) - set(experiment.splits))}")
        self.event_log = event_log
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recsys-fanout")
        self._discovered: tuple[float, list[_Retriever]] | None = None
        self._served_ranker: tuple[float, Ranker | None] | None = None
        self._lock = threading.Lock()
        self.feedback_dropped = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ discovery
    def retrievers(self, refresh: bool = False) -> list[_Retriever]:
        """The served retrievers (cached ``discovery_ttl_s``); unreachable or absent models are left out."""
        with self._lock:
            if not refresh and self._discovered and time.monotonic() - self._discovered[0] < self.config.discovery_ttl_s:
                return self._discovered[1]
        found = []
        for model in self.config.retrievers:
            for name in (model, N.BRUTE_FORCE_TWINS.get(model)):
                if name is None or not self._available(name):
                    continue
                try:
                    sigs = set(self.client.signature_defs(name))
                except ServingError:
                    continue
                if N.RECOMMEND_USER in sigs:
                    found.append(_Retriever(name, {N.USER_VECTOR, N.RECOMMEND_VECTOR, N.ITEM_EMBEDDING} <= sigs,
                                            N.RECOMMEND_SESSION in sigs))
                    break
        with self._lock:
            self._discovered = (time.monotonic(), found)
        return found

    def served_ranker(self, refresh: bool = False) -> Ranker | None:
        """``ServedRanker(client)`` when the server has the ``ranker`` model available, else None (cached
        ``discovery_ttl_s``): what ``ranker="auto"`` uses."""
        with self._lock:
            if not refresh and self._served_ranker and \
                    time.monotonic() - self._served_ranker[0] < self.config.discovery_ttl_s:
                return self._served_ranker[1]
        from .ranking import ServedRanker

        found = ServedRanker(self.client) if self._available(N.RANKER) else None
        with self._lock:
            self._served_ranker = (time.monotonic(), found)
        return found

    def _available(self, model: str) -> bool:
        try:
            return any(v.get("state") == "AVAILABLE" for v in self.client.model_status(model))
        except ServingError:
            return False

    # ------------------------------------------------------------------ recommend
    def recommend(self, user_id: str, k: int = 10, context: RequestContext | None = None) -> Response:
        timings: dict[str, float] = {}
        t_start = clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 3)
            clock = now

        user_id = check_id(user_id, "user_id")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise BadRequest(f"k must be an int, got {k!r} ({type(k).__name__})")
        if not 1 <= k <= self.config.max_k:
            raise BadRequest(f"k must be between 1 and {self.config.max_k}, got {k}")
        context = context if context is not None else RequestContext()
        if not isinstance(context, RequestContext):
            raise BadRequest(f"context must be a RequestContext, got {type(context).__name__}")
        history = check_ids(list(context.history) if isinstance(context.history, tuple) else context.history,
                            "context.history", MAX_HISTORY)
        exclude = check_ids(list(context.exclude) if isinstance(context.exclude, tuple) else context.exclude,
                            "context.exclude", MAX_HISTORY)
        blocked = check_ids(list(context.blocked) if isinstance(context.blocked, tuple) else context.blocked,
                            "context.blocked", MAX_HISTORY)
        now = time.time() if context.request_time is None else context.request_time
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now) or now < 0:
            raise BadRequest(f"context.request_time must be a finite UNIX time >= 0, got {context.request_time!r}")

        request_id = uuid.uuid4().hex
        arm = self.experiment.assign(user_id) if self.experiment else None
        settings = self.arm_settings.get(arm, {})
        use_feedback = settings.get("use_feedback", self.config.use_feedback)
        ranker = settings.get("ranker", self.ranker)
        if ranker == AUTO:
            ranker = self.served_ranker()
        policies = settings.get("policies", self.policies)
        fallbacks: list[str] = []
        lap("validate")

        retrievers = self.retrievers()
        state = self._load_state(user_id, [r.model for r in retrievers], fallbacks)
        lap("state")

        reports, lists, vectors = self._fan_out(user_id, retrievers, state if use_feedback else UserState(),
                                                exclude)
        skip = set(exclude)
        lists[REPEAT], reports[REPEAT] = self._repeat(history, state, skip)
        t0 = time.perf_counter()
        popular = self.items.popular(self.config.quota(POPULARITY), frozenset(skip))
        lists[POPULARITY] = [(i, float(c)) for i, c in popular]
        reports[POPULARITY] = SourceReport(OK, len(popular), round((time.perf_counter() - t0) * 1000, 3), POPULARITY)
        failed = [m.model for m in retrievers if reports[m.model].status != OK]
        for m in failed:
            fallbacks.append(f"retriever {m} skipped: {reports[m].status} ({reports[m].error})")
        if not retrievers:
            fallbacks.append("no retriever is served or reachable: popularity and repeat candidates only")
        elif len(failed) == len(retrievers):
            fallbacks.append("every retriever failed: popularity and repeat candidates only")
        lap("retrieval")

        candidates = self._merge(lists)
        lap("merge")

        candidates, ranked_by = self._rank(ranker, user_id, state, now, candidates, vectors, fallbacks, history)
        lap("ranking")

        rerank_context = R.RerankContext(categories=self.items.categories, interactions=self.items.interactions,
                                         embeddings=self._embeddings(policies, retrievers, candidates, fallbacks),
                                         ignored=state.ignored, bought=frozenset(state.bought),
                                         blocked=frozenset(blocked))
        final = policies.apply(candidates, k, rerank_context)
        items = [RankedItem(c.item_id, p, dict(c.sources), dict(c.scores), c.rule) for p, c in enumerate(final)]
        lap("rerank")

        if self.event_log is not None:
            self.event_log.append(event(EXPOSURE, request_id=request_id, user_id=user_id, item_id=i.item_id,
                                        experiment=self.experiment.name if self.experiment else None, arm=arm,
                                        position=i.position, ts=now) for i in items)
            lap("log")
        timings["total"] = round((time.perf_counter() - t_start) * 1000, 3)
        return Response(request_id, user_id, arm, items, reports, fallbacks, timings, ranked_by, policies.names)

    def _load_state(self, user_id: str, models: list[str], fallbacks: list[str]) -> UserState:
        if self.store is None:
            return UserState()
        try:
            return self.store.load(user_id, models)
        except STORE_ERRORS as err:
            fallbacks.append(f"store unavailable ({type(err).__name__}: {err}): no feedback state this request")
            return UserState()

    def _fan_out(self, user_id, retrievers, state, exclude):
        started = time.perf_counter()
        futures = {self._pool.submit(self._retrieve, r, user_id, state.deltas.get(r.model), state.recent_clicks,
                                     exclude): r.model for r in retrievers}
        done, _ = wait(futures, timeout=self.config.deadline_s) if futures else (set(), set())
        reports, lists, vectors = {}, {}, {}
        for future, model in futures.items():
            if future not in done:
                future.cancel()
                reports[model] = SourceReport(TIMEOUT, ms=round((time.perf_counter() - started) * 1000, 3),
                                              error=f"no answer within the {self.config.deadline_s}s deadline")
                continue
            try:
                items, query, vector, ms = future.result()
            except Exception as err:  # noqa: BLE001 — any retriever failure is skipped, and reported
                # (ServingError from the server, or an answer without the contract's outputs)
                reports[model] = SourceReport(FAILED, error=f"{type(err).__name__}: {err}")
                continue
            lists[model] = items
            if vector is not None:
                vectors[model] = vector
            reports[model] = SourceReport(OK, len(items), ms, query)
        return reports, lists, vectors

    def _retrieve(self, r: _Retriever, user_id: str, delta, recent_clicks, exclude):
        """``recommend_vector(u + δ)`` with a feedback offset; else ``recommend_session`` (the model's own
        session shift toward the recent clicks) when the user clicked recently and the model has it;
        else ``recommend_user``."""
        t0 = time.perf_counter()
        quota = self.config.quota(r.model)
        if quota == 0:
            return [], N.RECOMMEND_USER, None, 0.0
        excl = _pad_rows([exclude])
        if delta is not None and r.vector:
            user = self.client.predict({N.USER_ID: np.asarray([user_id], object)}, signature_name=N.USER_VECTOR,
                                       model_name=r.model)[N.EMBEDDING][0]
            if np.shape(delta) != np.shape(user) or not np.all(np.isfinite(delta)):
                delta = None  # a new model version with another dimension, or a corrupt value: start afresh
        if delta is not None and r.vector:
            q = fb.query_vector(user, delta)
            out = self.client.predict({N.EMBEDDING: q[None, :].astype(np.float32), N.K: np.asarray([quota], np.int32),
                                       N.EXCLUDE: excl}, signature_name=N.RECOMMEND_VECTOR, model_name=r.model)
            query, vector = N.RECOMMEND_VECTOR, q
        elif recent_clicks and r.session:
            out = self.client.predict({N.USER_ID: np.asarray([user_id], object),
                                       N.RECENT_ITEMS: _pad_rows([recent_clicks]),
                                       N.SESSION_WEIGHT: np.asarray([-1.0], np.float32),  # the model's default
                                       N.K: np.asarray([quota], np.int32), N.EXCLUDE: excl},
                                      signature_name=N.RECOMMEND_SESSION, model_name=r.model)
            query, vector = N.RECOMMEND_SESSION, None
        else:
            out = self.client.predict({N.USER_ID: np.asarray([user_id], object), N.K: np.asarray([quota], np.int32),
                                       N.EXCLUDE: excl}, signature_name=N.RECOMMEND_USER, model_name=r.model)
            query, vector = N.RECOMMEND_USER, None
        skip = set(exclude) | {""}
        items = [(str(i), float(s)) for i, s in zip(out[N.ITEM_IDS][0], out[N.SCORES][0])
                 if str(i) not in skip and math.isfinite(float(s))][:quota]
        return items, query, vector, round((time.perf_counter() - t0) * 1000, 3)

    def _repeat(self, history: list[str], state: UserState, skip: set) -> tuple[list, SourceReport]:
        """The user's own items: interaction count (history + recent clicks), ties to the most recent."""
        t0 = time.perf_counter()
        sequence = list(history) + list(reversed(state.recent_clicks))  # oldest first
        counts: dict[str, int] = {}
        last: dict[str, int] = {}
        for pos, item in enumerate(sequence):
            counts[item] = counts.get(item, 0) + 1
            last[item] = pos
        ranked = sorted((i for i in counts if i not in skip), key=lambda i: (-counts[i], -last[i]))
        items = [(i, float(counts[i])) for i in ranked[: self.config.quota(REPEAT)]]
        return items, SourceReport(OK, len(items), round((time.perf_counter() - t0) * 1000, 3), REPEAT)

    def _merge(self, lists: Mapping[str, list]) -> list[R.Candidate]:
        sources: dict[str, dict] = {}
        merged: dict[str, float] = {}
        rrf_k = self.config.rrf_k
        for source, items in lists.items():
            weight = float(self.config.weights.get(source, 1.0))
            for rank, (item, score) in enumerate(items, 1):
                sources.setdefault(item, {})[source] = {"rank": rank, "score": score}
                merged[item] = merged.get(item, 0.0) + weight / (rrf_k + rank)
        order = sorted(merged, key=lambda i: -merged[i])  # stable: first-seen order on ties
        return [R.Candidate(i, merged[i], sources[i], {"merge": merged[i]}) for i in order]

    def _rank(self, ranker, user_id, state, now, candidates, vectors, fallbacks, history):
        if ranker is None or not candidates:
            return candidates, "merge"
        names = sorted({s for c in candidates for s in c.sources})
        # one pass over the candidates fills every source's columns (0 where a source lacks the item)
        score_cols = {s: [0.0] * len(candidates) for s in names}
        rank_cols = {s: [0] * len(candidates) for s in names}
        for n, c in enumerate(candidates):
            for s, found in c.sources.items():
                score_cols[s][n] = found.get("score", 0.0)
                rank_cols[s][n] = found.get("rank", 0)
        features = {"merge": np.array([c.score for c in candidates], np.float32)}
        for s in names:
            features[f"{s}_score"] = np.array(score_cols[s], np.float32)
            features[f"{s}_rank"] = np.array(rank_cols[s], np.float32)
        request = RankRequest(user_id, tuple((i, CLICK, now) for i in state.recent_clicks), float(now),
                              tuple(c.item_id for c in candidates), features, dict(vectors), tuple(history))
        try:
            future = self._pool.submit(ranker.rank, request)
            try:
                out = future.result(timeout=self.config.ranker_deadline_s)
            except FutureTimeout:
                future.cancel()
                raise TimeoutError(f"no answer within the {self.config.ranker_deadline_s}s deadline") from None
            score = np.asarray(out["score"], np.float64)
            if score.shape != (len(candidates),) or not np.all(np.isfinite(score)):
                raise ValueError(f"the ranker returned scores of shape {score.shape} (finite: "
                                 f"{bool(np.all(np.isfinite(score)))}) for {len(candidates)} candidates")
        except Exception as err:  # noqa: BLE001 — any ranker failure falls back, and says so
            fallbacks.append(f"ranker failed ({type(err).__name__}: {err}): merged retrieval order")
            return candidates, "merge (ranker failed)"
        extra = {k: np.asarray(v, np.float64) for k, v in out.items() if k != "score"}
        # Python floats, a column at a time (not a numpy scalar per candidate and output)
        columns = {k: v.tolist() for k, v in extra.items() if np.shape(v) == (len(candidates),)}
        ranked = [R.Candidate(c.item_id, s, c.sources, dict(c.scores, ranker=s, **{k: v[n] for k, v in columns.items()}),
                              c.rule) for n, (c, s) in enumerate(zip(candidates, score.tolist()))]
        ranked.sort(key=lambda c: -c.score)
        return ranked, "ranker"

    def _embeddings(self, policies, retrievers, candidates, fallbacks) -> dict:
        if not any(isinstance(p, R.MMR) for p in policies.policies) or not candidates:
            return {}
        for r in retrievers:
            if not r.vector:
                continue
            ids = [c.item_id for c in candidates]
            try:
                emb = self.client.predict({N.ITEM_ID: np.asarray(ids, object)}, signature_name=N.ITEM_EMBEDDING,
                                          model_name=r.model)[N.EMBEDDING]
            except ServingError as err:
                fallbacks.append(f"item embeddings from {r.model} failed ({err})")
                continue
            return {i: np.asarray(v, np.float64) for i, v in zip(ids, emb)}
        fallbacks.append("MMR without item embeddings (no retriever answered item_embedding): score order")
        return {}

    # ------------------------------------------------------------------ feedback
    def feedback(self, user_id: str, impressions: Sequence[str], clicks: Sequence[str] = (),
                 purchases: Sequence[str] = (), request_id: str | None = None) -> FeedbackResult:
        """One round of responses to shown items; updates the user's offsets (``commerce_recsys_client.feedback``)
        and counters in the store. The store failing drops the round (counted in
        ``feedback_dropped``) without raising; a retriever failing skips that model's update."""
        user_id = check_id(user_id, "user_id")
        impressions = check_ids(impressions, "impressions", MAX_FEEDBACK_ITEMS)
        clicks = check_ids(clicks, "clicks", MAX_FEEDBACK_ITEMS)
        purchases = check_ids(purchases, "purchases", MAX_FEEDBACK_ITEMS)
        if request_id is not None:
            check_id(request_id, "request_id")
        if not impressions and not clicks and not purchases:
            raise BadRequest("feedback needs at least one impression, click or purchase")
        positives, weights, ignored = fb.split_feedback(impressions, clicks, purchases, self.rule.purchase_weight)
        skipped: dict[str, str] = {}
        inputs: dict[str, tuple] = {}
        retrievers = self.retrievers()
        for r in retrievers:
            if not r.vector:
                skipped[r.model] = "the model has no user_vector/recommend_vector/item_embedding signature"
                continue
            try:
                inputs[r.model] = self._feedback_vectors(r.model, user_id, positives, weights, ignored)
            except (ServingError, ValueError, KeyError) as err:
                skipped[r.model] = f"{type(err).__name__}: {err}"
        if not retrievers:
            skipped["*"] = "no retriever is served or reachable: counters only"

        def update(now: Mapping[str, np.ndarray]) -> dict:
            out = {}
            for model, (user, pos, w, neg) in inputs.items():
                delta = now.get(model)
                if delta is not None and (delta.shape != user.shape or not np.all(np.isfinite(delta))):
                    delta = None  # another model version's dimension, or a corrupt value: start afresh
                out[model] = self.rule.update(user, delta, pos, neg, w)
            return out

        self._log_responses(user_id, clicks, purchases, request_id)
        if self.store is None:
            self.feedback_dropped += 1
            return FeedbackResult(False, [], skipped, "no store configured")
        try:
            written = self.store.record(user_id, list(inputs), update, ignored, clicks, purchases)
        except STORE_ERRORS as err:
            self.feedback_dropped += 1
            return FeedbackResult(False, [], skipped, f"store unavailable ({type(err).__name__}: {err})")
        return FeedbackResult(True, sorted(written), skipped)

    def _feedback_vectors(self, model, user_id, positives, weights, ignored):
        user = np.asarray(self.client.predict({N.USER_ID: np.asarray([user_id], object)},
                                              signature_name=N.USER_VECTOR, model_name=model)[N.EMBEDDING][0],
                          np.float32)
        ids = positives + ignored
        emb = np.zeros((0, user.shape[0]), np.float32)
        if ids:
            emb = np.asarray(self.client.predict({N.ITEM_ID: np.asarray(ids, object)},
                                                 signature_name=N.ITEM_EMBEDDING, model_name=model)[N.EMBEDDING],
                             np.float32)
        if not np.all(np.isfinite(user)) or not np.all(np.isfinite(emb)):
            raise ValueError(f"{model} answered NaN or infinite vectors")
        known = np.linalg.norm(emb, axis=1) > 0 if len(ids) else np.zeros(0, bool)  # unknown items embed to 0
        pos = [emb[i] for i in range(len(positives)) if known[i]]
        w = [weights[i] for i in range(len(positives)) if known[i]]
        neg = [emb[len(positives) + j] for j in range(len(ignored)) if known[len(positives) + j]]
        return user, pos, w, neg

    def _log_responses(self, user_id, clicks, purchases, request_id) -> None:
        if self.event_log is None or request_id is None:
            return
        arm = self.experiment.assign(user_id) if self.experiment else None
        name = self.experiment.name if self.experiment else None
        self.event_log.append([event(CLICK, request_id=request_id, user_id=user_id, item_id=i, experiment=name, arm=arm)
                               for i in clicks]
                              + [event(PURCHASE, request_id=request_id, user_id=user_id, item_id=i, experiment=name,
                                       arm=arm) for i in purchases])


def _pad_rows(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """String rows "" padded to one width [B, max(1, longest)]."""
    width = max([1] + [len(r) for r in rows])
    out = np.full((len(rows), width), "", dtype=object)
    for i, r in enumerate(rows):
        out[i, : len(r)] = list(r)
    return out
