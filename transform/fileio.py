"""Artifact file I/O through ``tf.io.gfile``: a local path, ``gs://``, ``hdfs://`` or ``ram://`` alike.

Every component, trainer and exporter reads and writes artifact URIs through these
helpers instead of ``open``/``os.path``/``np.load``/``shutil``, so a pipeline root on
a cloud filesystem works as a local one does. On a local path each helper does what
the local call did (same bytes: ``write_json`` is ``json.dump`` into the file).

``os.path.join``/``dirname``/``basename`` stay as they are: on a POSIX launcher they
are string operations that are correct for ``scheme://bucket/dir`` URIs too.

TensorFlow is imported inside the helpers (``transform`` modules stay importable
without it until a file is touched).
"""
from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def is_local(path: str) -> bool:
    """True for a path on this machine's disk (no ``scheme://``, or ``file://``)."""
    return "://" not in path or path.startswith("file://")


def exists(path: str) -> bool:
    return _gfile().exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path)


def size(path: str) -> int:
    """Bytes of a file."""
    return int(_gfile().stat(path).length)


def makedirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``."""
    _gfile().makedirs(path)


def listdir(path: str) -> list[str]:
    """Entry names of a directory (no trailing ``/`` on subdirectories, as ``os.listdir``)."""
    return [name.rstrip("/") for name in _gfile().listdir(path)]


def glob(pattern: str) -> list[str]:
    """Paths matching ``pattern``, sorted (an empty list when none match)."""
    import tensorflow as tf

    try:
        return sorted(tf.io.gfile.glob(pattern))
    except tf.errors.NotFoundError:  # a pattern under a directory that does not exist (some filesystems)
        return []


def open_file(path: str, mode: str = "r"):
    """``open(path, mode)`` through gfile (text modes read and write ``str``, ``b`` modes bytes).

    Writing replaces an existing file: TensorFlow's ``ram://`` filesystem appends to a file
    opened for writing instead of truncating it, so a non-local file is deleted first.
    """
    gfile = _gfile()
    if mode.startswith("w") and not is_local(path) and gfile.exists(path):
        gfile.remove(path)
    return gfile.GFile(path, mode)


def read_text(path: str) -> str:
    with open_file(path, "r") as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    with open_file(path, "w") as f:
        f.write(text)


def read_bytes(path: str) -> bytes:
    with open_file(path, "rb") as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    with open_file(path, "wb") as f:
        f.write(data)


def read_json(path: str) -> Any:
    with open_file(path, "r") as f:
        return json.load(f)


def write_json(path: str, obj: Any, **dump_kwargs: Any) -> None:
    """``json.dump(obj, f, **dump_kwargs)`` into ``path`` (the bytes a local ``open`` would hold)."""
    with open_file(path, "w") as f:
        json.dump(obj, f, **dump_kwargs)


def load_npz(path: str, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file, read whole (``np.load`` over the bytes; the keys are its ``files``)."""
    with np.load(io.BytesIO(read_bytes(path)), allow_pickle=allow_pickle) as z:
        return {k: z[k] for k in z.files}


def save_npz(path: str, **arrays: Any) -> None:
    """``np.savez(path, **arrays)`` (the path is used as given: no ``.npz`` is appended).

    numpy's zip writer seeks back, which a gfile opened for writing does not allow, so the
    archive is built in memory and written in one go.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def copy(src: str, dst: str, overwrite: bool = False) -> None:
    """``shutil.copy`` of one file (both ends may be on any filesystem gfile knows)."""
    _gfile().copy(src, dst, overwrite=overwrite)


def copytree(src: str, dst: str) -> None:
    """``shutil.copytree``: every file under ``src`` to the same relative path under ``dst``."""
    gfile = _gfile()
    src = src.rstrip("/")
    for directory, _, files in gfile.walk(src):
        rel = directory.rstrip("/")[len(src):].lstrip("/")
        target = os.path.join(dst, rel) if rel else dst
        gfile.makedirs(target)
        for name in files:
            gfile.copy(os.path.join(directory, name), os.path.join(target, name), overwrite=False)
