"""A deterministic synthetic shop, for scale tests only (never for quality claims).

``generate(n_users, n_items, n_events, seed)`` builds:

* a 2-level category tree (8 departments x 4 sub-categories, ``"Kitchen > Cookware"``);
* items with a brand, a generated title (``"Norvik compact pan 214"``), a
  one-sentence description, a log-normal price and a creation date;
* Zipf item popularity (exponent 1.0 over a random ranking of the items); each
  user has a favourite department that 60% of their events come from;
* sessions of 1 + Poisson(3) events: 35% are baskets (every event a
  ``"purchase"`` sharing an ``order_id``), the rest browsing (impression, click,
  like, cart; clicks and likes have a ``dwell_ms``).

Generated in shards (version 2), so that no process has to hold every event: the
launcher draws only what is per user or per item -- the items table, the item
popularity, and each user's number of sessions and of events (:class:`Shard`) --
and each shard of users (contiguous user indices holding about
:data:`SHARD_EVENTS` events) draws its users' events from its own random stream,
``default_rng([seed, 2, shard index])``. ``event_shards`` hands the shards to a
pipeline (``recsys.data.streaming.EventShards``, generated inside Beam by
``transform/event_source.py``); ``generate`` concatenates them, so both give the
same events.

Exactly ``n_events`` events: the number of sessions is that of a stream of
1 + Poisson(3) sessions cut at ``n_events`` (as version 1 drew them), and the
sessions' extra events are the Poisson extras conditioned on their total
(``n_events`` - sessions): a multinomial over sessions, drawn as one per user in
the launcher, then spread uniformly over the user's sessions in the shard. Every
user gets one session first when there are at least as many sessions as users
(else a random subset of users gets one each), the rest go by log-normal activity.

The same arguments always give the same data (numpy ``default_rng`` streams
seeded with ``[seed, stream]``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.assemble import build_dataset, canonical_sort
from recsys.data.contract import LEAVE_ONE_OUT, PROTOCOLS, Dataset, validate_events, validate_items

NAME = "synthetic"
VERSION = 2  # bump when the generator changes (part of the fingerprint); 2: events generated per shard of users
SYNTHETIC_NOTE = "SYNTHETIC: for scale tests only, never for quality claims"
ANCHOR = 1_672_531_200  # 2023-01-01T00:00:00Z
ZIPF_EXPONENT = 1.0
FAVOURITE_SHARE = 0.6
BASKET_SHARE = 0.35
MEAN_EXTRA_SESSION_EVENTS = 3.0
BROWSE_TYPES = ("impression", "click", "like", "cart")
BROWSE_PROBS = (0.30, 0.45, 0.10, 0.15)
#: A shard is the contiguous users whose first event falls in one block of this many events (so a shard holds
#: about this many, plus the rest of its last user's): 50,000 events are about 15 MB as a canonical frame. The
#: shards seed their streams, so a change here changes the data (bump VERSION).
SHARD_EVENTS = 50_000
# The random streams, ``default_rng([seed, stream, ...])``: items and their popularity; the per-user plan;
# one per shard.
_ITEMS, _PLAN, _SHARD = 0, 1, 2
_SESSION_CHUNK = 1 << 20  # sessions drawn at a time while counting them

# department -> (sub-category, noun used in titles)
CATEGORY_TREE: dict[str, tuple[tuple[str, str], ...]] = {
    "Kitchen": (("Cookware", "pan"), ("Cutlery", "knife"), ("Storage", "container"), ("Appliances", "blender")),
    "Home": (("Lighting", "lamp"), ("Bedding", "duvet"), ("Decor", "vase"), ("Cleaning", "mop")),
    "Garden": (("Tools", "spade"), ("Plants", "planter"), ("Furniture", "bench"), ("Watering", "hose")),
    "Electronics": (("Audio", "speaker"), ("Computers", "keyboard"), ("Phones", "charger"), ("Cameras", "tripod")),
    "Sports": (("Running", "shoe"), ("Cycling", "helmet"), ("Fitness", "dumbbell"), ("Camping", "tent")),
    "Toys": (("Puzzles", "puzzle"), ("Building", "brick set"), ("Dolls", "doll"), ("Outdoor", "kite")),
    "Beauty": (("Skincare", "cream"), ("Haircare", "shampoo"), ("Fragrance", "perfume"), ("Makeup", "palette")),
    "Grocery": (("Coffee", "coffee"), ("Snacks", "crackers"), ("Pantry", "pasta"), ("Drinks", "juice")),
}
ADJECTIVES = ("compact", "classic", "deluxe", "eco", "smart", "mini", "pro", "soft", "sturdy", "bright",
              "quiet", "travel", "family", "premium", "basic", "urban")
_SYLLABLES = ("nor", "vik", "ala", "bri", "ton", "zen", "mar", "elo", "kra", "fin", "lum", "ori")
_SUBS = tuple((dept, sub, noun) for dept, children in CATEGORY_TREE.items() for sub, noun in children)
_SUB_DEPT = np.array([list(CATEGORY_TREE).index(dept) for dept, _, _ in _SUBS], dtype=np.int64)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _width(n: int) -> int:
    return len(str(max(n - 1, 0)))


def _format_ids(prefix: str, index: np.ndarray, n: int) -> np.ndarray:
    """``prefix`` + zero-padded ``index`` (padded to the width of ``n - 1``, so ids sort as their indices)."""
    width = _width(n)
    return np.array([f"{prefix}{i:0{width}d}" for i in np.asarray(index).tolist()], dtype=object)


def _check(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


# --- items and their popularity ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _ItemDraws:
    """Every random draw of the items (``[n_items]`` arrays but ``brands``), from the items stream."""

    brands: tuple[str, ...]
    sub: np.ndarray
    adjective: np.ndarray
    brand: np.ndarray
    model: np.ndarray
    price: np.ndarray
    created: np.ndarray
    rank: np.ndarray  # popularity rank (0 = most popular)


def _item_draws(n_items: int, seed: int) -> _ItemDraws:
    rng = _rng(seed, _ITEMS)
    picks = rng.integers(0, len(_SYLLABLES), size=(40, 2))
    brands = tuple((_SYLLABLES[a] + _SYLLABLES[b]).capitalize() for a, b in picks)
    sub = rng.integers(0, len(_SUBS), size=n_items)
    adjective = rng.integers(0, len(ADJECTIVES), size=n_items)
    brand = rng.integers(0, len(brands), size=n_items)
    model = rng.integers(100, 1000, size=n_items)
    sub_price = np.exp(rng.normal(3.0, 0.8, size=len(_SUBS)))
    price = np.round(sub_price[sub] * np.exp(rng.normal(0.0, 0.3, size=n_items)), 2)
    created = ANCHOR - rng.integers(0, 3 * 365 * 86_400, size=n_items)
    rank = rng.permutation(n_items)
    return _ItemDraws(brands, sub, adjective, brand, model, price, created, rank)


def _items(draws: _ItemDraws) -> pd.DataFrame:
    """The canonical items table."""
    titles, descriptions, categories = [], [], []
    for s, a, b, m in zip(draws.sub.tolist(), draws.adjective.tolist(), draws.brand.tolist(), draws.model.tolist()):
        dept, sub, noun = _SUBS[s]
        brand, adjective = draws.brands[b], ADJECTIVES[a]
        titles.append(f"{brand} {adjective} {noun} {m}")
        descriptions.append(f"A {adjective} {noun} by {brand}, from our {sub.lower()} range.")
        categories.append(f"{dept} > {sub}")
    raw = pd.DataFrame({
        "item_id": _format_ids("i", np.arange(len(draws.sub)), len(draws.sub)),
        "title": titles,
        "description": descriptions,
        "category": categories,
        "brand": [draws.brands[b] for b in draws.brand.tolist()],
        "price": draws.price,
        "created_at": draws.created.astype(np.int64),
    })
    return validate_items(raw, "synthetic items")


@dataclass(frozen=True, eq=False)
class _Popularity:
    """Zipf item popularity as cumulative distributions: over every item, and within each department."""

    cdf: np.ndarray                     # [n_items]
    dept_members: tuple[np.ndarray, ...]  # per department, its item indices
    dept_cdf: tuple[np.ndarray, ...]      # per department, [members]

    @classmethod
    def of(cls, draws: _ItemDraws) -> "_Popularity":
        weight = 1.0 / np.power(draws.rank + 1.0, ZIPF_EXPONENT)
        dept = _SUB_DEPT[draws.sub]
        members = tuple(np.flatnonzero(dept == d) for d in range(len(CATEGORY_TREE)))
        return cls(_cdf(weight), members, tuple(_cdf(weight[m]) for m in members))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.searchsorted(self.cdf, rng.random(n), side="right")

    def sample_in(self, dept: int, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.dept_members[dept][np.searchsorted(self.dept_cdf[dept], rng.random(n), side="right")]


def _cdf(weight: np.ndarray) -> np.ndarray:
    """Normalised cumulative weights (numpy's ``choice(p=...)`` sampling: ``searchsorted(cdf, u, "right")``)."""
    cdf = np.cumsum(weight)
    return cdf / cdf[-1] if cdf.size else cdf


# --- the plan: sessions and events per user, cut into shards -------------------------------------------


@dataclass(frozen=True, eq=False)
class Shard:
    """Users ``first_user .. first_user + len(sessions) - 1`` with their session and event counts."""

    index: int             # seeds the shard's random stream
    first_user: int
    first_session: int     # global index of the shard's first session (its session and order ids)
    sessions: np.ndarray   # [users] sessions per user
    events: np.ndarray     # [users] events per user (>= sessions)


def _count_sessions(rng: np.random.Generator, n_events: int) -> int:
    """Sessions of 1 + Poisson(3) events drawn until they hold ``n_events`` (the last one cut)."""
    chunk = min(n_events, _SESSION_CHUNK)  # n_events sessions always hold n_events events
    total = drawn = 0
    while True:
        ends = total + np.cumsum(1 + rng.poisson(MEAN_EXTRA_SESSION_EVENTS, size=chunk))
        k = int(np.searchsorted(ends, n_events))  # the first session that reaches n_events
        if k < chunk:
            return drawn + k + 1
        total, drawn = int(ends[-1]), drawn + chunk


def _plan(n_users: int, n_events: int, seed: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(number of sessions, ``[n_users]`` sessions per user, ``[n_users]`` events per user)."""
    rng = _rng(seed, _PLAN)
    n_sessions = _count_sessions(rng, n_events)
    activity = np.exp(rng.normal(0.0, 1.0, size=n_users))
    sessions = np.zeros(n_users, dtype=np.int64)
    sessions[rng.permutation(n_users)[:min(n_users, n_sessions)]] = 1
    sessions += rng.multinomial(n_sessions - int(sessions.sum()), activity / activity.sum())
    events = sessions + rng.multinomial(n_events - n_sessions, sessions / n_sessions)
    return n_sessions, sessions, events


def _shards(sessions: np.ndarray, events: np.ndarray) -> tuple[Shard, ...]:
    """The users cut where a block of :data:`SHARD_EVENTS` events starts; shards without events are left out."""
    n_users, n_events = len(events), int(events.sum())
    first_event = np.cumsum(events) - events
    first_session = np.cumsum(sessions) - sessions
    cuts = np.searchsorted(first_event, np.arange(0, n_events, SHARD_EVENTS), side="left")
    bounds = np.unique(np.concatenate([cuts, [n_users]]))
    ranges = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if events[lo:hi].sum() > 0]
    return tuple(Shard(k, lo, int(first_session[lo]), sessions[lo:hi].copy(), events[lo:hi].copy())
                 for k, (lo, hi) in enumerate(ranges))


class ShardEvents:
    """``shard → canonical events frame`` (``EventShards.events``); picklable and small (the item popularity
    is computed from the seed where it is first used, once per process)."""

    def __init__(self, n_users: int, n_items: int, n_sessions: int, seed: int):
        self.n_users, self.n_items, self.n_sessions, self.seed = n_users, n_items, n_sessions, seed
        self._popularity: _Popularity | None = None

    def __getstate__(self):
        return {**self.__dict__, "_popularity": None}

    def popularity(self) -> _Popularity:
        if self._popularity is None:
            self._popularity = _Popularity.of(_item_draws(self.n_items, self.seed))
        return self._popularity

    def __call__(self, shard: Shard) -> pd.DataFrame:
        rng = _rng(self.seed, _SHARD, shard.index)
        popularity = self.popularity()
        n_shard_users = len(shard.sessions)
        favourite = rng.integers(0, len(CATEGORY_TREE), size=n_shard_users)

        # Sessions: 1 event each, plus the user's extra events spread uniformly over the user's sessions.
        session_user = np.repeat(np.arange(n_shard_users), shard.sessions)
        n_sessions = session_user.size
        first_session = np.cumsum(shard.sessions) - shard.sessions
        extra_user = np.repeat(np.arange(n_shard_users), shard.events - shard.sessions)
        extra_session = first_session[extra_user] + rng.integers(0, shard.sessions[extra_user])
        sizes = 1 + np.bincount(extra_session, minlength=n_sessions)
        session = np.repeat(np.arange(n_sessions), sizes)
        user = session_user[session]
        n = session.size

        # Items: Zipf popularity; the favourite-department share drawn within the department by the same weights.
        item = popularity.sample(rng, n)
        from_favourite = rng.random(n) < FAVOURITE_SHARE
        for dept in range(len(CATEGORY_TREE)):
            pick = np.flatnonzero(from_favourite & (favourite[user] == dept))
            if popularity.dept_members[dept].size and pick.size:
                item[pick] = popularity.sample_in(dept, rng, pick.size)

        # Types: baskets are purchases with an order id; browsing mixes the other types.
        basket = rng.random(n_sessions) < BASKET_SHARE
        browse_type = np.array(BROWSE_TYPES, dtype=object)[rng.choice(len(BROWSE_TYPES), size=n, p=BROWSE_PROBS)]
        event_type = np.where(basket[session], "purchase", browse_type).astype(object)
        global_session = shard.first_session + np.arange(n_sessions)
        session_ids = _format_ids("s", global_session, self.n_sessions)
        order_ids = np.where(basket, _format_ids("o", global_session, self.n_sessions), "").astype(object)

        # Time: sessions start anywhere in one year; events 5..300 s apart.
        start = ANCHOR + rng.integers(0, 365 * 86_400, size=n_sessions)
        gaps = rng.integers(5, 300, size=n)
        total = np.cumsum(gaps)
        before_session = np.concatenate([[0], total[np.cumsum(sizes)[:-1] - 1]])
        timestamp = start[session] + total - np.repeat(before_session, sizes)
        dwell = np.where(np.isin(event_type, ("click", "like")),
                         np.round(np.exp(rng.normal(9.0, 1.0, size=n))), np.nan)

        users, user_of = np.unique(user, return_inverse=True)
        items, item_of = np.unique(item, return_inverse=True)
        raw = pd.DataFrame({
            "user_id": _format_ids("u", shard.first_user + users, self.n_users)[user_of],
            "item_id": _format_ids("i", items, self.n_items)[item_of],
            "event_type": event_type,
            "timestamp": timestamp.astype(np.int64),
            "order_id": order_ids[session],
            "session_id": session_ids[session],
            "dwell_ms": dwell,
        })
        return canonical_sort(validate_events(raw, "synthetic events"))


# --- the adapter ----------------------------------------------------------------------------------------


def params(n_users: int = 1000, n_items: int = 5000, n_events: int = 100_000, seed: int = 0,
           protocol: str = LEAVE_ONE_OUT) -> dict[str, object]:
    """The generator parameters (the fingerprint's)."""
    return {"version": VERSION, "n_users": n_users, "n_items": n_items, "n_events": n_events, "seed": seed,
            "protocol": protocol}


def source_files(path: str | None = None) -> tuple[str, ...]:
    """Synthetic data has no source files."""
    if path is not None:
        raise ValueError("the 'synthetic' dataset is generated, it reads no files: do not pass a path "
                         "(use the options n_users, n_items, n_events, seed)")
    return ()


def _notes(seed: int) -> tuple[str, ...]:
    return (
        SYNTHETIC_NOTE,
        f"generator v{VERSION}: seed={seed}, Zipf({ZIPF_EXPONENT}) item popularity, {FAVOURITE_SHARE:.0%} of a "
        f"user's events from a favourite department, sessions of 1 + Poisson({MEAN_EXTRA_SESSION_EVENTS:g}) "
        f"events, {BASKET_SHARE:.0%} of sessions are baskets (purchases sharing an order_id); events drawn per "
        f"shard of users (about {SHARD_EVENTS:,} events each)",
    )


def event_shards(path: str | None = None, *, n_users: int = 1000, n_items: int = 5000, n_events: int = 100_000,
                 seed: int = 0, protocol: str = LEAVE_ONE_OUT):
    """The dataset as shards of users for a pipeline to generate (``recsys.data.streaming.EventShards``).

    Computes the per-user plan (the items table when it is first asked for); no event is drawn here.
    """
    from recsys.data.streaming import EventShards

    source_files(path)
    n_users = _check("n_users", n_users)
    n_items = _check("n_items", n_items)
    n_events = _check("n_events", n_events)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    n_sessions, sessions, events = _plan(n_users, n_events, seed)
    return EventShards(
        name=NAME, protocol=protocol, shards=_shards(sessions, events),
        events=ShardEvents(n_users, n_items, n_sessions, seed), make_items=lambda: _items(_item_draws(n_items, seed)),
        items_source="synthetic items", params=tuple(sorted(params(n_users, n_items, n_events, seed,
                                                                   protocol).items())),
        notes=_notes(seed), synthetic=True)


def generate(n_users: int = 1000, n_items: int = 5000, n_events: int = 100_000, seed: int = 0,
             protocol: str = LEAVE_ONE_OUT) -> Dataset:
    """Generate the synthetic dataset (deterministic for given arguments): every shard, concatenated."""
    source = event_shards(None, n_users=n_users, n_items=n_items, n_events=n_events, seed=seed, protocol=protocol)
    events = pd.concat([source.events(shard) for shard in source.shards], ignore_index=True)
    return build_dataset(
        NAME, events, source.items,
        protocol=protocol,
        source_files=(),
        params=dict(source.params),
        events_source="synthetic events",
        items_source=source.items_source,
        notes=source.notes,
        synthetic=True,
    )


def load(path: str | None = None, *, n_users: int = 1000, n_items: int = 5000, n_events: int = 100_000,
         seed: int = 0, protocol: str = LEAVE_ONE_OUT) -> Dataset:
    """Registry entry point: :func:`generate` (``path`` must be ``None``)."""
    source_files(path)
    return generate(n_users, n_items, n_events, seed, protocol)
