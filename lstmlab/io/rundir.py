"""The run directory: one object owns every file a training run writes at its top level.

=================== =============================================================================
``config.yaml``     the resolved config, rewritten (atomically) at every start
``metrics.jsonl``   one JSON object per logged step (``step`` plus metric names); cut back on resume
``samples.txt``     generated text, one ``=== step N (temperature T) ===`` entry per evaluation; cut
                    back on resume
``summary.json``    the final metrics, written atomically at the end
``plots/``          PNG files (learning curves, the data set's own plots, gradient-norm plots)
``checkpoints/``    orbax checkpoints (:mod:`lstmlab.io.checkpoint`)
=================== =============================================================================

A run resumed from the checkpoint at step ``s`` drops the lines of ``metrics.jsonl`` and the entries of
``samples.txt`` written after ``s``, so that both files continue without repeated or missing steps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lstmlab.io.files import atomic_write_text
from lstmlab.io.trackers import JsonlTracker

CONFIG, METRICS, SAMPLES, SUMMARY = "config.yaml", "metrics.jsonl", "samples.txt", "summary.json"


class RunDir:
    """The files of one run directory (see the module docstring). Creating the object writes nothing;
    :meth:`create` makes the directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def name(self) -> str:
        return self.path.name

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, resolved: dict[str, Any]) -> Path:
        """``config.yaml`` from the resolved config (a plain nested dict)."""
        from omegaconf import OmegaConf

        path = self.path / CONFIG
        atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(resolved)))
        return path

    def metrics(self, resume_step: int = 0) -> JsonlTracker:
        """The ``metrics.jsonl`` tracker, its lines after ``resume_step`` dropped first."""
        return JsonlTracker(self.path, resume_step=resume_step)

    def cut_samples(self, step: int) -> None:
        """Drop the entries of ``samples.txt`` written after ``step``."""
        path = self.path / SAMPLES
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8", errors="replace")
        cut = next((m.start() for m in re.finditer(r"^=== step (\d+) ", text, flags=re.M) if int(m[1]) > step),
                   None)
        if cut is not None:
            atomic_write_text(path, text[:cut])

    def append_sample(self, step: int, temperature: float, text: str) -> None:
        with (self.path / SAMPLES).open("a", encoding="utf-8") as f:
            f.write(f"=== step {step} (temperature {temperature}) ===\n{text}\n\n")

    def write_summary(self, summary: dict[str, Any]) -> Path:
        path = self.path / SUMMARY
        atomic_write_text(path, json.dumps(summary, indent=2, default=str) + "\n")
        return path
