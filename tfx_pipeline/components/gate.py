"""The push gate every evaluator uses: a model is blessed only if it beats a bar on validation.

``model``'s validation ``metric`` must exceed ``baseline``'s by ``min_lift``
(relative: ``ours > bar * (1 + min_lift)``). Test metrics never decide anything.
The verdict goes to the ModelBlessing artifact (the ``blessed`` property TFX's
Pusher reads, plus a readable ``BLESSED``/``NOT_BLESSED`` file) and to stdout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

GATE_METRIC = "NDCG@10"


@dataclass(frozen=True)
class Gate:
    model: str
    baseline: str
    min_lift: float = 0.0
    metric: str = GATE_METRIC
    passed: str = "BLESSED"
    failed: str = "NOT blessed, nothing will be pushed"

    def decide(self, validation: dict[str, dict[str, float]]) -> tuple[bool, str]:
        """(blessed, verdict) from validation metrics {model: {metric: value}}."""
        if self.model not in validation:
            return False, f"{self.model}: no validation metrics (the model was not exported); nothing to push"
        if self.baseline not in validation:
            raise KeyError(f"gate for {self.model}: the baseline {self.baseline!r} has no validation metrics "
                           f"(have {sorted(validation)})")
        ours, bar = validation[self.model][self.metric], validation[self.baseline][self.metric]
        blessed = bool(ours > bar * (1.0 + self.min_lift))
        return blessed, (f"{self.model} validation {self.metric} {ours:.4f} vs {self.baseline} {bar:.4f} "
                         f"(required lift {self.min_lift:+.0%}): {self.passed if blessed else self.failed}")

    def apply(self, validation: dict[str, dict[str, float]], blessing) -> bool:
        """Decides and writes the verdict to the ``blessing`` artifact; returns whether it passed."""
        blessed, verdict = self.decide(validation)
        write_blessing(blessing, blessed, verdict)
        return blessed


def write_blessing(artifact, blessed: bool, verdict: str) -> None:
    """Marks a ModelBlessing artifact (the property the Pusher reads, a readable file) and prints the verdict."""
    artifact.set_int_custom_property("blessed", int(blessed))
    artifact.set_string_custom_property("reason", verdict)
    from transform import fileio

    fileio.write_text(os.path.join(artifact.uri, "BLESSED" if blessed else "NOT_BLESSED"), verdict + "\n")
    print(f"[evaluate] {verdict}", flush=True)
