"""Finding a run's artifacts in ML Metadata and on disk (pushed versions)."""
from __future__ import annotations

import os

from tfx_pipeline.layout import Layout


class ArtifactNotFound(FileNotFoundError):
    pass


def latest_output_uri(layout: Layout, component_id: str, output_key: str) -> str:
    """URI of the newest live artifact that ``component_id`` wrote to ``output_key`` (from ML Metadata)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    if not os.path.exists(layout.metadata_path):
        raise ArtifactNotFound(
            f"No ML Metadata store at {layout.metadata_path}: run `recsys run --dataset {layout.dataset} "
            f"--output {layout.root}` first.")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = layout.metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    ctx = store.get_context_by_type_and_name("node", f"{layout.pipeline_name}.{component_id}")
    if ctx is None:
        raise ArtifactNotFound(f"Component {component_id} never ran in pipeline {layout.pipeline_name}")
    uris = [a.uri for a in sorted(store.get_artifacts_by_context(ctx.id), key=lambda a: a.id)
            if a.state == metadata_store_pb2.Artifact.LIVE and f"/{output_key}/" in a.uri + "/"]
    if not uris:
        raise ArtifactNotFound(f"No live {output_key!r} artifact of {component_id} in {layout.metadata_path}")
    return uris[-1]


def latest_version_dir(base: str) -> str:
    """The highest numeric version directory under ``base`` (TF Serving's latest-version policy)."""
    from transform import fileio

    versions = [int(d) for d in fileio.listdir(base) if d.isdigit()] if fileio.isdir(base) else []
    if not versions:
        raise ArtifactNotFound(f"No pushed version under {base}: the model was never blessed and pushed.")
    return os.path.join(base, str(max(versions)))
