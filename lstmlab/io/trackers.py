"""Trackers behind one small protocol: metrics.jsonl in the run directory, Weights & Biases, both.

Every tracker gets one call per logged step with all of that step's metrics, so ``metrics.jsonl`` has
exactly one JSON object per logged step (keys ``step`` and metric names such as ``train/loss``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from lstmlab.config import WandbConfig
from lstmlab.io.files import append_text, atomic_write_text, check_no_symlink, read_jsonl

log = logging.getLogger(__name__)


class Tracker(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_samples(self, step: int, text: str) -> None: ...

    def log_plots(self, step: int, paths: dict[str, Path]) -> None: ...

    def log_series(
        self, step: int, name: str, xs: Sequence[float], ys: dict[str, Sequence[float]], xname: str = "x"
    ) -> None: ...

    def summary(self, metrics: dict[str, Any]) -> None: ...

    def finish(self, exit_code: int = 0) -> None: ...


class JsonlTracker:
    """Appends to ``metrics.jsonl``; on resume drops lines past the restored step first, so the file
    continues without duplicated or missing steps. Keeps the history for plots.

    The file is read with :func:`~lstmlab.io.files.read_jsonl`: damaged lines never stop a resume; a
    file with damaged lines is kept aside (``metrics.jsonl.damaged``) before the good records are
    written back, and :attr:`problem` holds the one-line report (also logged as a warning). Writes
    never follow a symbolic link (:class:`~lstmlab.io.files.UnsafePathError`)."""

    def __init__(self, path: Path, resume_step: int = 0):
        """``path``: the JSONL file in its run directory (``RunDir.metrics()`` gives the run's)."""
        self.path = Path(path)
        self.run_dir = self.path.parent
        self.history: list[dict[str, Any]] = []
        self.problem: str | None = None
        if self.path.exists() or self.path.is_symlink():
            check_no_symlink(self.path, self.run_dir)  # before reading, so a link is never set aside
            records, self.problem = read_jsonl(self.path)
            if self.problem:
                log.warning("%s", self.problem)
            self.history = [r for r in records if r["step"] <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.history), root=self.run_dir)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self.history.append(record)
        append_text(self.path, json.dumps(record) + "\n", root=self.run_dir)

    def log_samples(self, step: int, text: str) -> None:
        pass

    def log_plots(self, step: int, paths: dict[str, Path]) -> None:
        pass

    def log_series(
        self, step: int, name: str, xs: Sequence[float], ys: dict[str, Sequence[float]], xname: str = "x"
    ) -> None:
        pass  # whole curves go to files in the run directory (e.g. gradnorms.npz), not to the JSONL

    def summary(self, metrics: dict[str, Any]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def wandb_mode(configured: str | None) -> str:
    """The configured mode, else ``$WANDB_MODE``, else ``offline`` (a first run never asks to log in)."""
    return WandbConfig(mode=configured).resolved_mode()


def wandb_login_problem() -> str | None:
    """Why ``logger.wandb.mode=online`` cannot log in without asking (one line), or None: no
    ``WANDB_API_KEY``, no ``WANDB_IDENTITY_TOKEN_FILE`` and no ``~/.netrc`` (or ``$NETRC``) entry for
    the wandb host (``WANDB_BASE_URL``, default ``api.wandb.ai``). Reads only; no network."""
    import netrc
    import os
    from urllib.parse import urlparse

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return None
    base = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    host = urlparse(base).hostname or base
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        entry = netrc.netrc(str(path)).authenticators(host) if path.is_file() else None
    except (OSError, netrc.NetrcParseError):
        entry = None
    if entry and entry[2]:
        return None
    return (
        f"logger.wandb.mode=online but no wandb credentials for {host} (no WANDB_API_KEY, no entry in "
        f"{path}); run `wandb login`, set WANDB_API_KEY, or use logger.wandb.mode=offline or disabled"
    )


def run_id(run_dir: Path) -> str:
    """A wandb run id derived from the run directory, so a resumed run continues the same wandb run."""
    digest = hashlib.sha1(str(Path(run_dir).absolute()).encode()).hexdigest()[:12]
    return f"{Path(run_dir).name[:40]}-{digest}".replace("/", "-").replace(":", "-")


class WandbTracker:
    """A wandb run in ``run_dir/wandb`` with the resolved config; samples go to a table."""

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        *,
        mode: str,
        project: str,
        entity: str | None = None,
        tags: list[str] | None = None,
        name: str | None = None,
    ):
        import wandb

        self._wandb = wandb
        self.samples: list[list[Any]] = []
        self.run = wandb.init(
            dir=str(run_dir),
            mode=mode,
            project=project,
            entity=entity,
            tags=tags,
            config=config,
            id=run_id(run_dir),
            name=name,
            resume="allow",
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(dict(metrics), step=int(step))

    def log_samples(self, step: int, text: str) -> None:
        self.samples.append([int(step), text])
        self.run.log({"samples": self._wandb.Table(columns=["step", "text"], data=list(self.samples))}, step=int(step))

    def log_plots(self, step: int, paths: dict[str, Path]) -> None:
        self.run.log({f"plots/{k}": self._wandb.Image(str(p)) for k, p in paths.items()}, step=int(step))

    def log_series(
        self, step: int, name: str, xs: Sequence[float], ys: dict[str, Sequence[float]], xname: str = "x"
    ) -> None:
        """A line chart (``wandb.plot.line_series``), one line per entry of ``ys``, all over ``xs``;
        points that are not finite are left out of each line."""
        x = [float(v) for v in xs]
        lines = {key: [float(v) for v in values] for key, values in ys.items()}
        # a line series takes one x list per line; drop NaN/inf points, which the chart cannot draw
        kept = {key: [(a, b) for a, b in zip(x, values) if math.isfinite(b)] for key, values in lines.items()}
        kept = {key: points for key, points in kept.items() if points}
        if not kept:
            return
        chart = self._wandb.plot.line_series(
            xs=[[a for a, _ in p] for p in kept.values()],
            ys=[[b for _, b in p] for p in kept.values()],
            keys=list(kept),
            title=name,
            xname=xname,
        )
        self.run.log({name: chart}, step=int(step))

    def summary(self, metrics: dict[str, Any]) -> None:
        for key, value in metrics.items():
            self.run.summary[key] = value

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


class Trackers:
    """Several trackers as one."""

    def __init__(self, *trackers: Tracker):
        self.trackers = [t for t in trackers if t is not None]

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for t in self.trackers:
            t.log(step, metrics)

    def log_samples(self, step: int, text: str) -> None:
        for t in self.trackers:
            t.log_samples(step, text)

    def log_plots(self, step: int, paths: dict[str, Path]) -> None:
        for t in self.trackers:
            t.log_plots(step, paths)

    def log_series(
        self, step: int, name: str, xs: Sequence[float], ys: dict[str, Sequence[float]], xname: str = "x"
    ) -> None:
        for t in self.trackers:
            t.log_series(step, name, xs, ys, xname)

    def summary(self, metrics: dict[str, Any]) -> None:
        for t in self.trackers:
            t.summary(metrics)

    def finish(self, exit_code: int = 0) -> None:
        for t in self.trackers:
            t.finish(exit_code)
