"""Training loop: edge batches, uniform negatives, validation NDCG@10 every epoch, early stopping, session shift."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from recsys.evaluation import metrics
from trainer.graph import losses
from trainer.graph.config import GraphConfig
from trainer.graph.data import EvalRows, GraphData
from trainer.graph.model import GraphModel
from trainer.graph.optim import LazyAdam

SESSION_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
QUERY_SELF_WEIGHTS = (0.0, 0.5, 1.0)  # item query vector: audience mean (0) ... the item's own vector (1)
_STEP_INPUTS = ("user", "item", "behaviour", "pos_beta", "weight", "user_degree")


@dataclass
class TrainResult:
    model: GraphModel
    users: np.ndarray   # [U, D] served user vectors (best epoch)
    items: np.ndarray   # [N, D] served item vectors (best epoch)
    best_epoch: int
    best_val: dict
    log: list = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    wall_s: float = 0.0
    session_weight: float = 0.0
    session_val: dict = field(default_factory=dict)
    query_items: np.ndarray | None = None  # [N, D] item vectors as queries (session shift, anonymous history)
    query_self_weight: float = 1.0


def edge_tensors(graph: GraphData, config: GraphConfig) -> dict[str, np.ndarray]:
    """Per-edge constants: UltraGCN beta in the edge's behaviour graph, loss weight, neighbours."""
    du, di = graph.degrees()
    beta = 1.0 / du[graph.edge_behaviour, graph.edge_user] * np.sqrt(
        (du[graph.edge_behaviour, graph.edge_user] + 1) / (di[graph.edge_behaviour, graph.edge_item] + 1))
    weight = np.where(graph.edge_behaviour == graph.target, 1.0, config.aux_weight)
    recency = graph.edge_recency / np.maximum(graph.edge_count, 1)        # mean 2^(-age/half-life), in (0, 1]
    weight = weight * ((1.0 - config.recency_weight) + config.recency_weight * recency)
    weight = (weight * (1.0 + config.count_weight * np.log(np.maximum(graph.edge_count, 1)))).astype(np.float32)
    return {"user": graph.edge_user, "item": graph.edge_item, "behaviour": graph.edge_behaviour.astype(np.int64),
            "pos_beta": beta.astype(np.float32), "weight": weight,
            "user_degree": du[graph.edge_behaviour, graph.edge_user].astype(np.float32)}


def scores_topk(users: np.ndarray, items: np.ndarray, rows: EvalRows, exclude_history: bool, k: int = 10,
                user_vectors: np.ndarray | None = None) -> np.ndarray:
    """Full-ranking top-k catalogue positions [R, k] of ``rows`` (history masked when asked)."""
    q = users[rows.users] if user_vectors is None else user_vectors
    out = []
    block = metrics.score_batch_size(len(items))  # 1,024 rows up to 65,536 items, fewer above (memory)
    for s in range(0, len(q), block):
        sc = q[s:s + block] @ items.T
        out.append(metrics.top_k(sc, k, rows.histories[s:s + block] if exclude_history else None))
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def evaluate(users: np.ndarray, items: np.ndarray, rows: EvalRows, exclude_history: bool,
             user_vectors: np.ndarray | None = None, k: int = 10) -> dict:
    top = scores_topk(users, items, rows, exclude_history, k, user_vectors)
    return metrics.ranking_metrics(top, rows.targets, len(items), k=k)


def query_item_vectors(users: np.ndarray, items: np.ndarray, edge_user: np.ndarray, edge_item: np.ndarray,
                       self_weight: float) -> np.ndarray:
    """Item vectors to build a query from: ``(1 - s) a_i/|a_i| + s e_i/|e_i|``, ``a_i`` the mean unit vector of the
    item's training users (its audience), ``s = self_weight``; an item without users is its own unit vector.

    A query must live in the users' space. LightGCN's propagated item vectors do; an UltraGCN-style item
    vector is trained only as the other side of a dot product with users, so a mean of them is a poor
    user-side query, while its audience (one propagation step, item <- users) is one.
    """
    unit_items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    if self_weight >= 1.0:
        return unit_items.astype(np.float32)
    pairs = np.unique(np.stack([np.asarray(edge_user, np.int64), np.asarray(edge_item, np.int64)], 1), axis=0)
    unit_users = users / np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
    audience = np.zeros_like(items, dtype=np.float64)
    np.add.at(audience, pairs[:, 1], unit_users[pairs[:, 0]])
    norm = np.linalg.norm(audience, axis=1, keepdims=True)
    out = np.where(norm > 0, (1.0 - self_weight) * audience / np.maximum(norm, 1e-12) + self_weight * unit_items,
                   unit_items)
    return out.astype(np.float32)


def session_vectors(users: np.ndarray, items: np.ndarray, rows: EvalRows, weight: float, recent: int) -> np.ndarray:
    """``(1 - w) u/|u| + w m/|m|``, m = mean vector of each row's last ``recent`` history items (the served rule)."""
    u = users[rows.users]
    u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    m = np.zeros_like(u)
    for r, h in enumerate(rows.histories):
        if len(h):
            m[r] = items[h[-recent:]].mean(axis=0)
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    m = np.where(norm > 0, m / np.maximum(norm, 1e-12), 0.0)
    return np.where(norm > 0, (1 - weight) * u + weight * m, u)


class Trainer:
    def __init__(self, graph: GraphData, config: GraphConfig):
        tf.keras.utils.set_random_seed(config.seed)
        self.graph, self.config = graph, config
        self.model = GraphModel(graph, config)
        self.edges = edge_tensors(graph, config)
        du, di = graph.degrees()
        self.item_degree = tf.constant(di)                        # [nb, N]
        self.neighbours = tf.constant(graph.neighbours)           # [N, K]
        self.omega = tf.constant(graph.omega)
        self.optimizer = (LazyAdam(config.learning_rate) if config.optimizer == "lazy_adam"
                          else tf.keras.optimizers.Adam(config.learning_rate))
        self.rng = tf.random.Generator.from_seed(config.seed)
        self.optimizer.build(self.model.trainable_variables)  # slots exist before the in-graph loop
        self._columns = {k: tf.constant(self.edges[k]) for k in _STEP_INPUTS}
        self._epoch = tf.function(self._run_epoch)

    def _train_step(self, user, item, behaviour, pos_beta, weight, user_degree):
        c = self.config
        m = c.negatives if c.variant == "ultragcn" else 1
        b = tf.shape(user)[0]
        if c.variant == "ultragcn" and c.shared_negatives:  # one uniform set for the whole batch
            negatives = self.rng.uniform([m], 0, self.model.num_items, dtype=tf.int64)
            cols = tf.broadcast_to(negatives[None, :], [b, m])
        else:
            negatives = self.rng.uniform([b, m], 0, self.model.num_items, dtype=tf.int64)
            cols = negatives
        rows = tf.broadcast_to(behaviour[:, None], tf.shape(cols))
        neg_deg = tf.gather_nd(self.item_degree, tf.stack([rows, cols], axis=-1))  # [B, M]
        neg_beta = losses.constraint_beta(user_degree[:, None], neg_deg)
        batch = {"user": user, "item": item, "behaviour": behaviour, "pos_beta": pos_beta, "weight": weight,
                 "negatives": negatives, "neg_beta": neg_beta,
                 "neighbours": tf.gather(self.neighbours, item), "omega": tf.gather(self.omega, item)}
        with tf.GradientTape() as tape:
            loss = self.model.loss(batch)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def _run_epoch(self, order):
        """One pass over the edges in ``order`` [E], batch after batch inside one graph; mean batch loss."""
        n = tf.shape(order, out_type=tf.int64)[0]
        bs = tf.constant(self.config.batch_size, tf.int64)
        total = tf.constant(0.0)
        for s in tf.range(tf.constant(0, tf.int64), n, bs):
            idx = order[s:s + bs]
            total += self._train_step(*(tf.gather(self._columns[k], idx) for k in _STEP_INPUTS))
        return total / tf.cast((n + bs - 1) // bs, tf.float32)

    def epoch(self, epoch: int) -> float:
        order = np.random.default_rng(self.config.seed + epoch).permutation(len(self.edges["user"]))
        if self.config.max_steps_per_epoch:  # the first batches of this epoch's order
            order = order[:self.config.max_steps_per_epoch * self.config.batch_size]
        return float(self._epoch(tf.constant(order, tf.int64)))

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        u, i = self.model.final_vectors()
        return u.numpy(), i.numpy()


def train(graph: GraphData, val: EvalRows, config: GraphConfig, exclude_history: bool, log=print,
          name: str = "graph") -> TrainResult:
    """Trains to convergence: validation NDCG@10 every ``eval_every`` epochs; the kept epoch is the best by the
    mean of the last ``select_window`` evaluations; stop after ``patience`` evaluations without a gain."""
    start = time.time()
    t = Trainer(graph, config)
    best, best_epoch, best_vectors, history, waited, train_s = -1.0, 0, None, [], 0, 0.0
    for epoch in range(1, config.max_epochs + 1):
        t0 = time.time()
        loss = t.epoch(epoch)
        train_s += time.time() - t0
        if epoch % config.eval_every and epoch != config.max_epochs:
            continue
        users, items = t.vectors()
        m = evaluate(users, items, val, exclude_history)
        entry = {"epoch": epoch, "loss": round(loss, 5), "val_HR@10": round(m["HR@10"], 4),
                 "val_NDCG@10": round(m["NDCG@10"], 4), "elapsed_s": round(time.time() - start, 1)}
        history.append(entry)
        # model selection on the mean of the last ``select_window`` evaluations: one lucky epoch on a few
        # hundred validation users is noise (NDCG@10's standard error on 943 users is about 0.007)
        window = [h["val_NDCG@10"] for h in history[-config.select_window:]]
        smoothed = float(np.mean(window)) if len(window) == config.select_window else -1.0
        entry["val_NDCG@10_smoothed"] = round(smoothed, 4)
        improved = smoothed > best
        if improved:
            best, best_epoch, best_vectors, best_metrics, waited = smoothed, epoch, (users, items), m, 0
        else:
            waited += 1
        log(f"[{name}] epoch {epoch}: loss={loss:.4f} val_HR@10={m['HR@10']:.4f} val_NDCG@10={m['NDCG@10']:.4f}"
            f" (mean of last {config.select_window}: {smoothed:.4f}){' *' if improved else ''} elapsed={entry['elapsed_s']}s")
        if waited >= config.patience:
            log(f"[{name}] early stop: no validation gain for {config.patience} evaluations; best epoch {best_epoch}")
            break
    if best_vectors is None:  # fewer evaluations than the window: keep the last
        best_epoch, best_vectors, best_metrics = epoch, (users, items), m
    users, items = best_vectors
    result = TrainResult(t.model, users, items, best_epoch, best_metrics, history,
                         seconds_per_epoch=train_s / max(1, len(history) * config.eval_every),
                         wall_s=time.time() - start)
    # session shift: the weight of the recent items' mean and what an item contributes to it (its own vector,
    # its audience, or half each), chosen on validation
    scores = {}
    for s in QUERY_SELF_WEIGHTS:
        q = query_item_vectors(users, items, graph.edge_user, graph.edge_item, s)
        for w in SESSION_WEIGHTS:
            scores[(s, w)] = evaluate(users, items, val, exclude_history,
                                      user_vectors=session_vectors(users, q, val, w, config.session_items))["NDCG@10"]
    # ties: the smaller shift, then the item's own vector
    result.query_self_weight, result.session_weight = max(scores, key=lambda sw: (scores[sw], -sw[1], sw[0]))
    result.query_items = query_item_vectors(users, items, graph.edge_user, graph.edge_item, result.query_self_weight)
    result.session_val = {f"self={s},w={w}": round(v, 4) for (s, w), v in scores.items()}
    best = scores[(result.query_self_weight, result.session_weight)]
    log(f"[{name}] session shift (last {config.session_items} items): validation NDCG@10 {best:.4f} at weight "
        f"{result.session_weight}, item query self-weight {result.query_self_weight} (no shift: {scores[(1.0, 0.0)]:.4f})")
    return result
