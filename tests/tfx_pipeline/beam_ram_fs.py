"""A Beam ``FileSystem`` for TensorFlow's in-memory ``ram://`` filesystem (tests only).

TensorFlow ships ``ram://`` (``tf.io.gfile``, SavedModel, checkpoints and ``tf.data`` all
work on it); Beam has no filesystem for that scheme. Importing this module registers one
(Beam finds ``FileSystem`` subclasses by their ``scheme()``) that forwards every call to
``tf.io.gfile``, so a Beam stage's ``ReadFromTFRecord``/``WriteToTFRecord`` and the
components' own ``tf.io.gfile`` reads see the same in-memory files. Both live in this
process: it works with the DirectRunner's in-memory mode only (the pipeline's default).

On a real cluster the same role is played by ``gs://`` (Beam's ``GCSFileSystem`` and
TensorFlow's GCS filesystem) or ``hdfs://``/``s3://``; nothing here is used by the pipeline.
"""
from __future__ import annotations

import posixpath

import tensorflow as tf
from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem

SCHEME = "ram"


class _Writable:
    """A gfile opened for writing, with the ``mode``/``tell``/``seekable`` Beam's CompressedFile asks for."""

    mode = "wb"

    def __init__(self, path: str):
        self._f = tf.io.gfile.GFile(path, "wb")
        self._n = 0

    def write(self, data) -> int:
        self._f.write(bytes(data))
        self._n += len(data)
        return len(data)

    def tell(self) -> int:
        return self._n

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    @property
    def closed(self) -> bool:
        return self._f.closed


class RamFileSystem(FileSystem):
    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    def join(self, basepath: str, *paths: str) -> str:
        return posixpath.join(basepath, *paths)

    def split(self, path: str) -> tuple[str, str]:
        head, tail = posixpath.split(path)
        return head, tail

    def mkdirs(self, path: str) -> None:
        tf.io.gfile.makedirs(path)

    def has_dirs(self) -> bool:
        return True

    def _list(self, dir_or_prefix: str):
        if not tf.io.gfile.exists(dir_or_prefix):
            return
        for directory, _, files in tf.io.gfile.walk(dir_or_prefix):
            for name in files:
                path = posixpath.join(directory, name)
                yield FileMetadata(path, tf.io.gfile.stat(path).length)

    def _open(self, path: str, mode: str, compression_type: str):
        raw = _Writable(path) if mode == "wb" else tf.io.gfile.GFile(path, "rb")
        if compression_type == CompressionTypes.AUTO:
            compression_type = CompressionTypes.detect_compression_type(path)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        tf.io.gfile.makedirs(posixpath.dirname(path))
        return self._open(path, "wb", compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._open(path, "rb", compression_type)

    def copy(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            if tf.io.gfile.isdir(src):
                for directory, _, files in tf.io.gfile.walk(src):
                    for name in files:
                        rel = posixpath.relpath(posixpath.join(directory, name), src)
                        tf.io.gfile.makedirs(posixpath.dirname(posixpath.join(dst, rel)))
                        tf.io.gfile.copy(posixpath.join(directory, name), posixpath.join(dst, rel), overwrite=True)
            else:
                tf.io.gfile.copy(src, dst, overwrite=True)

    def rename(self, source_file_names, destination_file_names):
        errors = {}
        for src, dst in zip(source_file_names, destination_file_names):
            try:
                tf.io.gfile.makedirs(posixpath.dirname(dst))
                tf.io.gfile.rename(src, dst, overwrite=True)
            except tf.errors.OpError as e:
                errors[(src, dst)] = e
        if errors:
            raise BeamIOError("Rename operation failed", errors)

    def exists(self, path: str) -> bool:
        return tf.io.gfile.exists(path)

    def size(self, path: str) -> int:
        return tf.io.gfile.stat(path).length

    def last_updated(self, path: str) -> float:
        return tf.io.gfile.stat(path).mtime_nsec / 1e9

    def checksum(self, path: str) -> str:
        return str(self.size(path))

    def metadata(self, path: str) -> FileMetadata:
        stat = tf.io.gfile.stat(path)
        return FileMetadata(path, stat.length, stat.mtime_nsec / 1e9)

    def delete(self, paths):
        errors = {}
        for path in paths:
            try:
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                else:
                    tf.io.gfile.remove(path)
            except tf.errors.OpError as e:
                errors[path] = e
        if errors:
            raise BeamIOError("Delete operation failed", errors)


def rename_trees(rename):
    """``tf.io.gfile.rename`` that moves a whole ``ram://`` directory, as GCS's filesystem does.

    TF's ``ram://`` renames only the directory's own entry and leaves its files behind, so
    tf.Transform's last step (``WriteTransformFn``: rename the temporary ``transform_fn`` and
    metadata directories, then delete the temporary tree) leaves an empty ``transform_fn``.
    TF's GCS filesystem renames every object under a directory; this does the same on ``ram://``
    (copy every file, delete the source) and calls ``rename`` for anything else.
    """

    def rename_tree(src, dst, overwrite=False):
        if str(src).startswith(SCHEME + "://") and tf.io.gfile.isdir(src):
            base = str(src).rstrip("/")
            for directory, _, files in list(tf.io.gfile.walk(base)):
                rel = directory.rstrip("/")[len(base):].lstrip("/")
                target = posixpath.join(dst, rel) if rel else dst
                tf.io.gfile.makedirs(target)
                for name in files:
                    tf.io.gfile.copy(posixpath.join(directory, name), posixpath.join(target, name), overwrite=overwrite)
                    tf.io.gfile.remove(posixpath.join(directory, name))
            return None
        return rename(src, dst, overwrite)

    return rename_tree


def exact_listing(list_directory):
    """``list_directory`` without the names TF's ``ram://`` lists by mistake.

    ``ram://`` lists a directory by name prefix: ``listdir(".../assets")`` also returns
    ``.extra`` (from ``.../assets.extra/...``), so TFX's Pusher, which walks a SavedModel and
    copies every file it lists, fails on ``assets/.extra``. Keeps only names that exist under
    the directory.
    """

    def listdir(dirname):
        names = list_directory(dirname)
        if not str(dirname).startswith(SCHEME + "://"):
            return names
        return [n for n in names if tf.io.gfile.exists(posixpath.join(dirname, n.rstrip("/")))]

    return listdir


def fix_ram_trees(monkeypatch) -> None:
    """Directory rename and exact listings on ``ram://`` (what a cloud filesystem does), for a test's duration."""
    from tensorflow.python.lib.io import file_io

    monkeypatch.setattr(tf.io.gfile, "rename", rename_trees(tf.io.gfile.rename))
    listdir = exact_listing(file_io.list_directory_v2)
    monkeypatch.setattr(file_io, "list_directory_v2", listdir)  # what tf.io.gfile.walk lists with
    monkeypatch.setattr(tf.io.gfile, "listdir", listdir)
