"""Business re-ranking: small, pure, composable policies over a scored candidate list (DESIGN.md §6).

Each policy is a frozen dataclass (its config) with ``apply(items, k, context) -> items``:
it takes the list in its current order and returns a new list (never mutating its input),
recording on every item it moved or placed the rule that did it (``Candidate.rule``).
:class:`RerankPipeline` applies them in order and cuts to ``k``. No transport, no state:
what a policy needs from the outside world (categories, embeddings, exposure counts,
bought items) arrives in :class:`RerankContext`.

Policies:

* :class:`Exclude` — drops bought and blocked items.
* :class:`SuppressIgnored` — drops items shown ``max_ignored`` times without a response.
* :class:`CategoryCap` — at most ``max_per_category`` items of a category in the top ``k``.
* :class:`MMR` — maximal marginal relevance over item embeddings (Carbonell & Goldstein, 1998).
* :class:`NoveltyShare` — at least ``share`` of the top ``k`` are cold items (few interactions).
* :class:`AdSlots` — sponsored items at fixed positions, never adjacent, above a relevance floor.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

import numpy as np

#: the rule of an item placed by its score alone
BY_SCORE = "score"


@dataclass(frozen=True)
class Candidate:
    """One candidate item on its way through the stages.

    ``sources``: source -> {"rank": 1-based rank in that source, "score": the source's score};
    ``scores``: stage -> score ("merge", "ranker", "pctr", ...); ``score`` orders the list;
    ``rule``: what placed the item where it is.
    """

    item_id: str
    score: float
    sources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    scores: Mapping[str, float] = field(default_factory=dict)
    rule: str = BY_SCORE

    def placed(self, rule: str) -> "Candidate":
        return dataclasses.replace(self, rule=rule)


@dataclass(frozen=True)
class RerankContext:
    """What the policies may read about the user and the catalogue.

    ``categories``: item -> category; ``interactions``: item -> training interaction count;
    ``embeddings``: item -> vector [D]; ``ignored``: item -> times shown to this user without a
    response; ``bought``: items the user bought; ``blocked``: items the caller blocks for this request.
    """

    categories: Mapping[str, str] = field(default_factory=dict)
    interactions: Mapping[str, int] = field(default_factory=dict)
    embeddings: Mapping[str, np.ndarray] = field(default_factory=dict)
    ignored: Mapping[str, int] = field(default_factory=dict)
    bought: frozenset = frozenset()
    blocked: frozenset = frozenset()


class Policy(Protocol):
    name: str

    def apply(self, items: Sequence[Candidate], k: int, context: RerankContext) -> list[Candidate]: ...


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_fraction(name: str, value, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 1) \
            or (low_open and value == 0):
        raise ValueError(f"{name} must be a number in {'(0' if low_open else '[0'}, 1], got {value!r}")


@dataclass(frozen=True)
class Exclude:
    """Drops items the user bought (``bought=True``) and the request's blocked items."""

    bought: bool = True
    name: str = "exclude"

    def apply(self, items, k, context):
        drop = set(context.blocked) | (set(context.bought) if self.bought else set())
        return [c for c in items if c.item_id not in drop]


@dataclass(frozen=True)
class SuppressIgnored:
    """Drops items this user was shown ``max_ignored`` or more times without clicking or buying."""

    max_ignored: int = 3
    name: str = "suppress_ignored"

    def __post_init__(self):
        _check_int("max_ignored", self.max_ignored, 1)

    def apply(self, items, k, context):
        return [c for c in items if context.ignored.get(c.item_id, 0) < self.max_ignored]


@dataclass(frozen=True)
class CategoryCap:
    """Walks the list in order; an item whose category already has ``max_per_category`` items in
    the top ``k`` is deferred (kept, in order, after the top ``k``). Items without a category are
    never capped. Items that moved up because others were deferred are marked ``category_cap``."""

    max_per_category: int = 3
    name: str = "category_cap"

    def __post_init__(self):
        _check_int("max_per_category", self.max_per_category, 1)

    def apply(self, items, k, context):
        top, deferred, counts = [], [], {}
        for c in items:
            cat = context.categories.get(c.item_id)
            if len(top) < k and (cat is None or counts.get(cat, 0) < self.max_per_category):
                if cat is not None:
                    counts[cat] = counts.get(cat, 0) + 1
                top.append(c if not deferred else c.placed(self.name))
            else:
                deferred.append(c)
        return top + deferred


@dataclass(frozen=True)
class MMR:
    """Maximal marginal relevance: greedily picks, for each of the top ``k`` positions,

        argmax_i  λ · rel(i) − (1 − λ) · max(0, max_{j picked} cos(e_i, e_j))

    with ``rel`` the list's scores min-max scaled to [0, 1] (1 for a constant list) and ``e`` the
    item embeddings (an item without one has similarity 0 to all). Ties go to the earlier item.
    Items picked out of their original order are marked ``mmr``; the rest follow in order."""

    lambda_: float = 0.7
    name: str = "mmr"

    def __post_init__(self):
        _check_fraction("lambda_", self.lambda_)

    def apply(self, items, k, context):
        items = list(items)
        if not items:
            return []
        scores = np.array([c.score for c in items], np.float64)
        span = scores.max() - scores.min()
        rel = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
        dim = next((len(v) for v in context.embeddings.values()), 0)
        unit = np.zeros((len(items), dim))
        for i, c in enumerate(items):
            v = context.embeddings.get(c.item_id)
            if v is not None and np.linalg.norm(v) > 0:
                unit[i] = np.asarray(v, np.float64) / np.linalg.norm(v)
        remaining, out = list(range(len(items))), []
        max_sim = np.zeros(len(items))  # max(0, cos) to the picked items: dissimilarity earns no bonus
        while remaining and len(out) < k:
            gain = [self.lambda_ * rel[i] - (1 - self.lambda_) * max_sim[i] for i in remaining]
            best = remaining[int(np.argmax(gain))]
            out.append(items[best] if best == remaining[0] else items[best].placed(self.name))
            remaining.remove(best)
            if dim:
                max_sim = np.maximum(max_sim, unit @ unit[best])
        return out + [items[i] for i in remaining]


@dataclass(frozen=True)
class NoveltyShare:
    """At least ``ceil(share · k)`` cold items (≤ ``max_interactions`` training interactions; unknown
    items count as 0) in the top ``k``. Missing cold items are the best-scored cold items below the
    top ``k``; they replace the lowest warm items of the top ``k`` and take the last slots, in score
    order, marked ``novelty``. Fewer cold candidates than needed: as many as there are."""

    share: float = 0.2
    max_interactions: int = 5
    name: str = "novelty"

    def __post_init__(self):
        _check_fraction("share", self.share)
        _check_int("max_interactions", self.max_interactions, 0)

    def cold(self, item_id: str, context: RerankContext) -> bool:
        return context.interactions.get(item_id, 0) <= self.max_interactions

    def apply(self, items, k, context):
        items = list(items)
        top, rest = items[:k], items[k:]
        need = math.ceil(self.share * min(k, len(items))) - sum(self.cold(c.item_id, context) for c in top)
        promote = [c for c in rest if self.cold(c.item_id, context)][:max(need, 0)]
        if not promote:
            return items
        warm_positions = [i for i, c in enumerate(top) if not self.cold(c.item_id, context)]
        demoted = set(warm_positions[len(warm_positions) - len(promote):])
        kept = [c for i, c in enumerate(top) if i not in demoted]
        promoted_ids = {c.item_id for c in promote}
        return (kept + [c.placed(self.name) for c in promote]
                + [top[i] for i in sorted(demoted)] + [c for c in rest if c.item_id not in promoted_ids])


@dataclass(frozen=True)
class AdSlots:
    """Sponsored items at fixed 0-based ``positions`` of the top ``k``, never two adjacent.

    For each position in order, the next sponsored item (in ``sponsored`` order) that is a
    candidate with ``score >= min_score`` (the relevance floor, in the units of the list's score)
    and not already placed takes it; it leaves its organic place. A position with no eligible
    sponsored item stays organic. Placed ads are marked ``ad_slot``."""

    sponsored: tuple = ()
    positions: tuple = (2, 6)
    min_score: float = -math.inf
    name: str = "ad_slot"

    def __post_init__(self):
        if isinstance(self.sponsored, str) or not all(isinstance(s, str) and s for s in self.sponsored):
            raise ValueError(f"sponsored must be a sequence of non-empty item ids, got {self.sponsored!r}")
        for p in self.positions:
            _check_int("every ad position", p, 0)
        ordered = sorted(self.positions)
        if len(set(ordered)) != len(ordered) or any(b - a < 2 for a, b in zip(ordered, ordered[1:])):
            raise ValueError(f"ad positions must be distinct and never adjacent, got {self.positions!r}")
        if not isinstance(self.min_score, (int, float)) or isinstance(self.min_score, bool) \
                or self.min_score != self.min_score:
            raise ValueError(f"min_score must be a number, got {self.min_score!r}")

    def apply(self, items, k, context):
        by_id = {c.item_id: c for c in items}
        eligible = [by_id[s] for s in self.sponsored if s in by_id and by_id[s].score >= self.min_score]
        ads: dict[int, Candidate] = {}
        for pos in sorted(p for p in self.positions if p < min(k, len(items))):
            if not eligible:
                break
            ads[pos] = eligible.pop(0).placed(self.name)
        placed = {c.item_id for c in ads.values()}
        organic = iter(c for c in items if c.item_id not in placed)
        out = []
        for pos in range(len(items)):
            nxt = ads.get(pos) or next(organic, None)
            if nxt is None:
                break
            out.append(nxt)
        return out


@dataclass(frozen=True)
class RerankPipeline:
    """The policies in order, then the cut to ``k``."""

    policies: tuple = ()

    def apply(self, items: Sequence[Candidate], k: int, context: RerankContext) -> list[Candidate]:
        out = list(items)
        for policy in self.policies:
            out = policy.apply(out, k, context)
        return out[:k]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.policies]


def default_pipeline(sponsored: Sequence[str] = ()) -> RerankPipeline:
    """Exclusions and suppression first (they only remove), then diversity, novelty and ads."""
    return RerankPipeline((Exclude(), SuppressIgnored(), CategoryCap(), NoveltyShare(),
                           AdSlots(sponsored=tuple(sponsored))))
