"""Where a run's artifacts live: one root (default ./artifacts) holds everything."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    root: str
    dataset: str

    @property
    def slug(self) -> str:
        return self.dataset.replace("/", "_")

    @property
    def pipeline_name(self) -> str:
        return f"recsys-{self.slug}"

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.root, "pipelines", self.slug)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.root, "metadata", f"{self.slug}.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.root, "serving")

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.root, "metrics", f"{self.slug}.json")

    @property
    def models_config(self) -> str:
        return os.path.join(self.serving_dir, "models.config")

    def makedirs(self) -> None:
        for d in (self.pipeline_root, os.path.dirname(self.metadata_path), self.serving_dir,
                  os.path.dirname(self.metrics_path)):
            os.makedirs(d, exist_ok=True)
