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

The same arguments always give the same data (numpy ``default_rng(seed)``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.assemble import build_dataset
from recsys.data.contract import LEAVE_ONE_OUT, PROTOCOLS, Dataset, validate_events, validate_items

NAME = "synthetic"
VERSION = 1  # bump when the generator changes (part of the fingerprint)
SYNTHETIC_NOTE = "SYNTHETIC: for scale tests only, never for quality claims"
ANCHOR = 1_672_531_200  # 2023-01-01T00:00:00Z
ZIPF_EXPONENT = 1.0
FAVOURITE_SHARE = 0.6
BASKET_SHARE = 0.35
MEAN_EXTRA_SESSION_EVENTS = 3.0
BROWSE_TYPES = ("impression", "click", "like", "cart")
BROWSE_PROBS = (0.30, 0.45, 0.10, 0.15)

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


def _brands(rng: np.random.Generator, n: int = 40) -> list[str]:
    picks = rng.integers(0, len(_SYLLABLES), size=(n, 2))
    return [(_SYLLABLES[a] + _SYLLABLES[b]).capitalize() for a, b in picks]


def _ids(prefix: str, n: int) -> np.ndarray:
    width = len(str(max(n - 1, 0)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _check(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _items(rng: np.random.Generator, n_items: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Canonical items and each item's department index."""
    subs = [(dept, sub, noun) for dept, children in CATEGORY_TREE.items() for sub, noun in children]
    dept_index = {dept: i for i, dept in enumerate(CATEGORY_TREE)}
    brands = _brands(rng)
    sub_of = rng.integers(0, len(subs), size=n_items)
    adj_of = rng.integers(0, len(ADJECTIVES), size=n_items)
    brand_of = rng.integers(0, len(brands), size=n_items)
    model_of = rng.integers(100, 1000, size=n_items)
    sub_price = np.exp(rng.normal(3.0, 0.8, size=len(subs)))
    price = np.round(sub_price[sub_of] * np.exp(rng.normal(0.0, 0.3, size=n_items)), 2)
    created = ANCHOR - rng.integers(0, 3 * 365 * 86_400, size=n_items)
    titles, descriptions, categories = [], [], []
    for s, a, b, m in zip(sub_of, adj_of, brand_of, model_of):
        dept, sub, noun = subs[s]
        titles.append(f"{brands[b]} {ADJECTIVES[a]} {noun} {m}")
        descriptions.append(f"A {ADJECTIVES[a]} {noun} by {brands[b]}, from our {sub.lower()} range.")
        categories.append(f"{dept} > {sub}")
    raw = pd.DataFrame({
        "item_id": _ids("i", n_items),
        "title": titles,
        "description": descriptions,
        "category": categories,
        "brand": [brands[b] for b in brand_of],
        "price": price,
        "created_at": created.astype(np.int64),
    })
    depts = np.array([dept_index[subs[s][0]] for s in sub_of], dtype=np.int64)
    return validate_items(raw, "synthetic items"), depts


def _events(rng: np.random.Generator, n_users: int, n_items: int, n_events: int,
            item_dept: np.ndarray, item_ids: np.ndarray) -> pd.DataFrame:
    # Sessions: 1 + Poisson(3) events each, cut to exactly n_events.
    estimate = int(n_events / (1 + MEAN_EXTRA_SESSION_EVENTS) * 1.3) + 16
    sizes = 1 + rng.poisson(MEAN_EXTRA_SESSION_EVENTS, size=estimate)
    while sizes.sum() < n_events:
        sizes = np.concatenate([sizes, 1 + rng.poisson(MEAN_EXTRA_SESSION_EVENTS, size=estimate)])
    ends = np.cumsum(sizes)
    n_sessions = int(np.searchsorted(ends, n_events) + 1)
    sizes = sizes[:n_sessions].copy()
    sizes[-1] -= int(ends[n_sessions - 1] - n_events)
    session = np.repeat(np.arange(n_sessions), sizes)

    # Users: every user gets a session first (as far as sessions go), then by log-normal activity.
    activity = np.exp(rng.normal(0.0, 1.0, size=n_users))
    first = rng.permutation(n_users)[:min(n_users, n_sessions)]
    rest = rng.choice(n_users, size=n_sessions - len(first), p=activity / activity.sum())
    session_user = np.concatenate([first, rest])
    favourite = rng.integers(0, len(CATEGORY_TREE), size=n_users)

    # Items: Zipf popularity over a random ranking; favourite-department share within the department.
    rank = rng.permutation(n_items)
    weight = 1.0 / np.power(rank + 1.0, ZIPF_EXPONENT)
    user = session_user[session]
    item = rng.choice(n_items, size=n_events, p=weight / weight.sum())
    from_favourite = rng.random(n_events) < FAVOURITE_SHARE
    for dept in range(len(CATEGORY_TREE)):
        members = np.flatnonzero(item_dept == dept)
        pick = np.flatnonzero(from_favourite & (favourite[user] == dept))
        if members.size and pick.size:
            w = weight[members]
            item[pick] = members[rng.choice(members.size, size=pick.size, p=w / w.sum())]

    # Types: baskets are purchases with an order id; browsing mixes the other types.
    basket = rng.random(n_sessions) < BASKET_SHARE
    browse_type = np.array(BROWSE_TYPES, dtype=object)[rng.choice(len(BROWSE_TYPES), size=n_events, p=BROWSE_PROBS)]
    event_type = np.where(basket[session], "purchase", browse_type).astype(object)
    session_ids = _ids("s", n_sessions)
    order_id = np.where(basket[session], _ids("o", n_sessions)[session], "")

    # Time: sessions start anywhere in one year; events 5..300 s apart.
    start = ANCHOR + rng.integers(0, 365 * 86_400, size=n_sessions)
    gaps = rng.integers(5, 300, size=n_events)
    total = np.cumsum(gaps)
    before_session = np.concatenate([[0], total[np.cumsum(sizes)[:-1] - 1]])
    offsets = total - np.repeat(before_session, sizes)
    timestamp = start[session] + offsets
    dwell = np.where(np.isin(event_type, ("click", "like")), np.round(np.exp(rng.normal(9.0, 1.0, size=n_events))),
                     np.nan)
    raw = pd.DataFrame({
        "user_id": _ids("u", n_users)[user],
        "item_id": item_ids[item],
        "event_type": event_type,
        "timestamp": timestamp.astype(np.int64),
        "order_id": order_id.astype(object),
        "session_id": session_ids[session],
        "dwell_ms": dwell,
    })
    return validate_events(raw, "synthetic events")


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


def generate(n_users: int = 1000, n_items: int = 5000, n_events: int = 100_000, seed: int = 0,
             protocol: str = LEAVE_ONE_OUT) -> Dataset:
    """Generate the synthetic dataset (deterministic for given arguments)."""
    n_users = _check("n_users", n_users)
    n_items = _check("n_items", n_items)
    n_events = _check("n_events", n_events)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    rng = np.random.default_rng(seed)
    items, item_dept = _items(rng, n_items)
    events = _events(rng, n_users, n_items, n_events, item_dept, items["item_id"].to_numpy(dtype=object))
    notes = (
        SYNTHETIC_NOTE,
        f"generator v{VERSION}: seed={seed}, Zipf({ZIPF_EXPONENT}) item popularity, {FAVOURITE_SHARE:.0%} of a "
        f"user's events from a favourite department, sessions of 1 + Poisson({MEAN_EXTRA_SESSION_EVENTS:g}) "
        f"events, {BASKET_SHARE:.0%} of sessions are baskets (purchases sharing an order_id)",
    )
    return build_dataset(
        NAME, events, items,
        protocol=protocol,
        source_files=(),
        params=params(n_users, n_items, n_events, seed, protocol),
        events_source="synthetic events",
        items_source="synthetic items",
        notes=notes,
        synthetic=True,
    )


def load(path: str | None = None, *, n_users: int = 1000, n_items: int = 5000, n_events: int = 100_000,
         seed: int = 0, protocol: str = LEAVE_ONE_OUT) -> Dataset:
    """Registry entry point: :func:`generate` (``path`` must be ``None``)."""
    source_files(path)
    return generate(n_users, n_items, n_events, seed, protocol)
