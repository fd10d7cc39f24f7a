"""What a data set's ``spec.kind`` means for training, one object per kind: its loss, the shape of the
model's head, its metrics, its plots, whether it can be sampled and how its result reads
(:meth:`Task.result_lines`, the last lines of a run on the console).

=========== =========================================== ===============================================
kind        loss (per counted item)                     metrics
=========== =========================================== ===============================================
lm          softmax cross-entropy of the next token     ``loss`` (nats), ``bpc`` (bits), ``accuracy``
symbols     softmax cross-entropy at every step         ``loss`` (nats); the data set adds its own
multilabel  sigmoid cross-entropy summed over classes   ``loss`` (nats), ``accuracy`` (all classes right)
classify    softmax cross-entropy of the label          ``loss`` (nats), ``accuracy``
regress     squared error averaged over the K targets   ``loss`` (= ``mse``), ``mse``
=========== =========================================== ===============================================

``symbols`` is ``lm`` without characters (the copy task): no bits per character, and no accuracy over
all steps (mostly blanks); the data set's ``extra_metrics`` say what is right.

Items are steps with ``mask`` = 1 (lm, symbols, multilabel; a head at every step) or sequences with ``weights``
= 1 (classify, regress; one output per sequence; all sequences count in training, where there is no
``weights`` key). Every loss works on one batch and returns *sums* with their counts, so evaluation
over many batches adds them up exactly and divides once. Losses are in nats; bits per character are
``nats / ln 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmlab.data import Batch, Dataset, DataSpec

Array = jax.Array
LN2 = math.log(2.0)


@runtime_checkable
class Forecasting(Protocol):
    """A data set that can lay a split's outputs out as a forecast over time (for ``forecast.png``)."""

    spec: DataSpec

    def forecast_arrays(
        self, split: str, outputs: np.ndarray, batches: list[Batch], step: int = 0
    ) -> dict[str, np.ndarray]: ...


SPLITS = ("train", "val", "test")
DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class Metric:
    """A metric a task reports, logged as ``SPLIT/NAME`` (``val/bpc``) in ``metrics.jsonl`` and
    ``summary.json``. ``direction``: which way is better; ``label``: what it is, for people; ``short``:
    its name in the progress display."""

    name: str
    direction: str  # minimize | maximize
    label: str
    short: str = ""

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is better than ``b``."""
        return a < b if self.direction == "minimize" else a > b


def _declare(*metrics: Metric) -> dict[str, Metric]:
    return {m.name: m for m in metrics}


LOSS = Metric("loss", "minimize", "loss (nats per counted item)", "loss")
ACCURACY = Metric("accuracy", "maximize", "accuracy (argmax right)", "acc")
FRACTION_CORRECT = Metric("fraction_correct", "maximize", "sequences right by the task's rule", "right")
ERRORS = Metric("errors", "minimize", "sequences wrong by the task's rule", "errors")


class Task:
    """The behaviour of one data kind. Subclasses set :attr:`kind` and :attr:`per_step`, declare their
    :attr:`metrics` (the data sets' extra metrics of that kind included) and :attr:`headline`, and give
    :meth:`batch_sums`; the rest has defaults. Everything that ranks, shows or optimises a metric
    (summary, progress display, report, search) reads these declarations."""

    kind: ClassVar[str]
    per_step: ClassVar[bool]  # a head at every step (True) or one output per sequence (False)
    accuracy: ClassVar[bool] = True
    metrics: ClassVar[dict[str, Metric]] = _declare(LOSS, ACCURACY)
    headline: ClassVar[str] = "accuracy"  # the metric that says how good a run is

    def metric(self, key: str) -> Metric | None:
        """The declaration of ``key`` (``val/bpc`` or ``bpc``), or None if this task does not report it."""
        split, _, name = key.rpartition("/")
        return self.metrics.get(name) if split in ("", *SPLITS) else None

    def headline_key(self, split: str = "val") -> str:
        """``SPLIT/HEADLINE``, e.g. ``val/bpc``."""
        return f"{split}/{self.headline}"

    def batch_sums(self, outputs: Array, batch: dict[str, Array]) -> dict[str, Array]:
        """Sums over the counted items of one batch: ``loss``, ``correct``, ``count``."""
        raise NotImplementedError

    def mean_loss(self, outputs: Array, batch: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
        """The training objective: mean loss per counted item, and the sums."""
        sums = self.batch_sums(outputs, batch)
        return sums["loss"] / jnp.maximum(sums["count"], 1.0), sums

    def metrics_from_sums(self, sums: dict[str, float]) -> dict[str, float]:
        """Named metrics from (accumulated) sums; see the table in the module docstring."""
        count = max(float(sums["count"]), 1.0)
        loss = float(sums["loss"]) / count
        return {"loss": loss, **({"accuracy": float(sums["correct"]) / count} if self.accuracy else {})}

    def train_metrics(self, loss: float, correct: float, count: float) -> dict[str, float]:
        """Metrics beside ``loss`` logged for training, from the mean loss and summed counts."""
        return {"accuracy": correct / count} if self.accuracy and count else {}

    def keeps_eval_outputs(self, spec: DataSpec) -> bool:
        """Whether evaluation keeps the outputs of a whole split (for the data set's extra metrics)."""
        return True

    def extra_metrics(
        self, dataset: Dataset, split: str, outputs: np.ndarray, batches: list[Batch]
    ) -> dict[str, float]:
        return dataset.extra_metrics(split, outputs, batches)

    def plots(
        self, dataset: Dataset, split: str, outputs: np.ndarray, batches: list[Batch], plot_dir: Path
    ) -> dict[str, Path]:
        """The task's own plots of ``split`` (after the final test evaluation); {name: path}."""
        return {}

    def vocab(self, dataset: Dataset) -> Any | None:
        """The data set's character vocabulary (``encode``/``decode``/``to_json``), if the task has one:
        checkpoints record it, and text is sampled with it."""
        return None

    def signature_keys(self) -> list[str]:
        """Model-signature keys (beyond the shared ones) that must match to resume a checkpoint."""
        return [] if self.per_step else ["model.pooling"]

    def result_lines(self, summary: dict[str, Any]) -> list[str]:
        """The run's result for people, from its summary (``test/*`` metrics): what the console shows
        last. The default names the test loss and accuracy."""
        lines = [f"test loss {_fmt(summary.get('test/loss'))} nats"]
        if self.accuracy and "test/accuracy" in summary:
            lines = [
                f"test accuracy {_fmt(summary['test/accuracy'], 3, fixed=True)}, "
                f"loss {_fmt(summary.get('test/loss'))} nats"
            ]
        return lines


class LanguageModel(Task):
    kind, per_step = "lm", True
    metrics = _declare(
        LOSS, Metric("bpc", "minimize", "bits per character", "bpc"), replace(ACCURACY, label="next character right")
    )
    headline = "bpc"

    def batch_sums(self, outputs: Array, batch: dict[str, Array]) -> dict[str, Array]:
        mask = batch["mask"].astype(jnp.float32)
        nll = optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), batch["targets"])
        correct = (outputs.argmax(-1) == batch["targets"]).astype(jnp.float32)
        return {"loss": (nll * mask).sum(), "correct": (correct * mask).sum(), "count": mask.sum()}

    def metrics_from_sums(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = super().metrics_from_sums(sums)
        return {"loss": metrics["loss"], "bpc": metrics["loss"] / LN2, "accuracy": metrics["accuracy"]}

    def train_metrics(self, loss: float, correct: float, count: float) -> dict[str, float]:
        return {"bpc": loss / LN2, **super().train_metrics(loss, correct, count)}

    def keeps_eval_outputs(self, spec: DataSpec) -> bool:
        return not spec.stateful  # streamed text: nothing extra, and the outputs are large

    def vocab(self, dataset: Dataset) -> Any | None:
        return getattr(dataset, "vocab", None)  # character data

    def result_lines(self, summary: dict[str, Any]) -> list[str]:
        line = f"test {_fmt(summary.get('test/bpc'), 3, fixed=True)} bits per character"
        if "val/bpc" in summary:
            line += f" (validation {_fmt(summary['val/bpc'], 3, fixed=True)})"
        if "test/accuracy" in summary:
            line += f", next character right {_percent(summary['test/accuracy'])}"
        return [line]


class Symbols(LanguageModel):
    """Symbols at every step that are not text (the copy task): the loss of :class:`LanguageModel`, no
    bits per character, no accuracy over all steps; the data set's metrics say what is right."""

    kind, accuracy = "symbols", False
    metrics = _declare(
        LOSS,
        Metric("copy_accuracy", "maximize", "recalled symbols right", "copy_acc"),
        Metric("fraction_correct", "maximize", "sequences recalled all right", "right"),
        Metric("cross_entropy", "minimize", "cross-entropy (nats per step)", "ce"),
        Metric("baseline_cross_entropy", "minimize", "memoryless baseline's cross-entropy (nats per step)", "base_ce"),
    )
    headline = "copy_accuracy"

    def metrics_from_sums(self, sums: dict[str, float]) -> dict[str, float]:
        return Task.metrics_from_sums(self, sums)

    def train_metrics(self, loss: float, correct: float, count: float) -> dict[str, float]:
        return {}

    def keeps_eval_outputs(self, spec: DataSpec) -> bool:
        return True

    def vocab(self, dataset: Dataset) -> Any | None:
        return None

    def result_lines(self, summary: dict[str, Any]) -> list[str]:
        lines = []
        if "test/copy_accuracy" in summary:
            line = f"test: recalled symbols right {_percent(summary['test/copy_accuracy'])}"
            if "test/fraction_correct" in summary:
                line += f", sequences all right {_percent(summary['test/fraction_correct'])}"
            lines.append(line)
        ce = summary.get("test/cross_entropy", summary.get("test/loss"))
        line = f"cross-entropy {_fmt(ce)} nats per step"
        if "test/baseline_cross_entropy" in summary:
            line += f" (memoryless baseline {_fmt(summary['test/baseline_cross_entropy'])})"
        return lines + [line]


class MultiLabel(Task):
    kind, per_step = "multilabel", True
    metrics = _declare(
        LOSS,
        Metric("accuracy", "maximize", "steps with every label right", "acc"),
        FRACTION_CORRECT,
        Metric("fraction_correct_top", "maximize", "strings right by the most active units", "right_top"),
        ERRORS,
    )
    headline = "fraction_correct"

    def result_lines(self, summary: dict[str, Any]) -> list[str]:
        if "test/fraction_correct" in summary:
            return [_rule_line(summary, "strings")]
        return super().result_lines(summary)

    def batch_sums(self, outputs: Array, batch: dict[str, Array]) -> dict[str, Array]:
        mask = batch["mask"].astype(jnp.float32)
        targets = batch["targets"].astype(jnp.float32)
        bce = optax.sigmoid_binary_cross_entropy(outputs.astype(jnp.float32), targets).sum(-1)
        correct = jnp.all((outputs > 0) == (targets > 0.5), axis=-1).astype(jnp.float32)
        return {"loss": (bce * mask).sum(), "correct": (correct * mask).sum(), "count": mask.sum()}


def _weights(outputs, batch):
    return batch.get("weights", jnp.ones((outputs.shape[0],), jnp.float32)).astype(jnp.float32)


class Classification(Task):
    kind, per_step = "classify", False
    metrics = _declare(LOSS, ACCURACY, FRACTION_CORRECT, ERRORS)

    def result_lines(self, summary: dict[str, Any]) -> list[str]:
        if "test/accuracy" not in summary:
            return super().result_lines(summary)
        accuracy = float(summary["test/accuracy"])
        line = f"test accuracy {_fmt(accuracy, 3, fixed=True)}"
        errors = summary.get("test/errors")
        if errors is not None and "test/fraction_correct" not in summary:  # errors = argmax mistakes
            line += f" ({_wrong(accuracy, errors)})"
        lines = [line]
        if "test/fraction_correct" in summary:  # a stricter rule of the data set's (e.g. a tolerance)
            lines.append(_rule_line(summary))
        return lines

    def plots(
        self, dataset: Dataset, split: str, outputs: np.ndarray, batches: list[Batch], plot_dir: Path
    ) -> dict[str, Path]:
        """``confusion_matrix.png``: the split's real examples, true class against the argmax."""
        from lstmlab.data.padded import real_rows
        from lstmlab.io.plots import confusion_matrix

        logits, batch = real_rows(outputs, batches)
        K = logits.shape[-1]
        counts = np.zeros((K, K), np.int64)
        np.add.at(counts, (np.asarray(batch["labels"]), logits.argmax(-1)), 1)
        classes = [str(c) for c in getattr(dataset, "classes", range(K))]
        path = Path(plot_dir) / "confusion_matrix.png"
        return {
            "confusion_matrix": confusion_matrix(counts, classes, path, title=f"{split}: {int(counts.sum())} examples")
        }

    def batch_sums(self, outputs: Array, batch: dict[str, Array]) -> dict[str, Array]:
        weights = _weights(outputs, batch)
        nll = optax.softmax_cross_entropy_with_integer_labels(outputs.astype(jnp.float32), batch["labels"])
        correct = (outputs.argmax(-1) == batch["labels"]).astype(jnp.float32)
        return {"loss": (nll * weights).sum(), "correct": (correct * weights).sum(), "count": weights.sum()}


class Regression(Task):
    """Regression and forecasting; a data set that is :class:`Forecasting` also gets ``forecast.png``."""

    kind, per_step, accuracy = "regress", False, False
    metrics = _declare(
        LOSS,
        Metric("mse", "minimize", "mean squared error", "mse"),
        FRACTION_CORRECT,
        ERRORS,
        Metric("rmse", "minimize", "forecast RMSE (original units)", "rmse"),
        Metric("mae", "minimize", "forecast MAE (original units)", "mae"),
        Metric("persistence_rmse", "minimize", "persistence forecast's RMSE", "persist_rmse"),
        Metric("persistence_mae", "minimize", "persistence forecast's MAE", "persist_mae"),
        Metric("seasonal_rmse", "minimize", "seasonal-naive forecast's RMSE", "seas_rmse"),
        Metric("seasonal_mae", "minimize", "seasonal-naive forecast's MAE", "seas_mae"),
        Metric("skill", "maximize", "skill against persistence (1 - RMSE ratio)", "skill"),
        Metric("seasonal_skill", "maximize", "skill against the seasonal-naive forecast", "seas_skill"),
    )
    headline = "mse"

    def batch_sums(self, outputs: Array, batch: dict[str, Array]) -> dict[str, Array]:
        weights = _weights(outputs, batch)
        err = ((outputs.astype(jnp.float32) - batch["targets"].astype(jnp.float32)) ** 2).mean(-1)
        return {"loss": (err * weights).sum(), "correct": jnp.zeros(()), "count": weights.sum()}

    def metrics_from_sums(self, sums: dict[str, float]) -> dict[str, float]:
        loss = super().metrics_from_sums(sums)["loss"]
        return {"loss": loss, "mse": loss}

    def result_lines(self, summary: dict[str, Any]) -> list[str]:
        if "test/rmse" in summary:  # a forecast, judged against the baselines in original units
            line = f"test RMSE {_fmt(summary['test/rmse'])}"
            for skill, base, name in (
                ("test/skill", "test/persistence_rmse", "persistence"),
                ("test/seasonal_skill", "test/seasonal_rmse", "seasonal-naive"),
            ):
                if skill in summary:
                    line += f", skill {_fmt(summary[skill], 2, fixed=True)} vs {name} (RMSE {_fmt(summary.get(base))})"
            return [line]
        lines = [f"test MSE {_fmt(summary.get('test/mse', summary.get('test/loss')))}"]
        if "test/fraction_correct" in summary:
            lines.append(_rule_line(summary))
        return lines

    def plots(
        self, dataset: Dataset, split: str, outputs: np.ndarray, batches: list[Batch], plot_dir: Path
    ) -> dict[str, Path]:
        if not isinstance(dataset, Forecasting):
            return {}
        from lstmlab.io.plots_forecast import plot_forecast

        path = Path(plot_dir) / "forecast.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        info = dataset.spec.info
        plot_forecast(
            str(path),
            dataset.forecast_arrays(split, outputs, batches),
            title=f"{info.get('series', '')}: {split} forecast, one step ahead",
            ylabel=info.get("units", ""),
        )
        return {"forecast": path}


TASKS: dict[str, Task] = {t.kind: t for t in (LanguageModel(), Symbols(), MultiLabel(), Classification(), Regression())}


def _fmt(value: Any, digits: int = 3, fixed: bool = False) -> str:
    """A number for people: ``digits`` significant digits (or decimals with ``fixed``), no exponent for
    ordinary magnitudes; "n/a" for a missing value."""
    if value is None:
        return "n/a"
    x = float(value)
    if not math.isfinite(x):
        return str(x)
    if fixed:
        return f"{x:.{digits}f}"
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return f"{x:.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x)))) if x else digits - 1
    return f"{x:,.{decimals}f}"


def _percent(fraction: Any) -> str:
    return f"{100 * float(fraction):.1f} %"


def _wrong(accuracy: float, errors: float) -> str:
    """ "7 of 370 wrong" (the total from the accuracy: errors / (1 - accuracy)), or "none wrong"."""
    errors = int(round(float(errors)))
    if errors == 0:
        return "none wrong"
    return f"{errors} of {int(round(errors / (1.0 - accuracy)))} wrong"


def _rule_line(summary: dict[str, Any], what: str = "sequences") -> str:
    """The data set's own rule of right (``test/fraction_correct``, ``test/errors``)."""
    fraction = float(summary["test/fraction_correct"])
    line = f"{what} right by the task's rule {_percent(fraction)}"
    if "test/errors" in summary:
        line += f" ({_wrong(fraction, summary['test/errors'])})"
    return line


def declared_metric(key: str, task: str | None = None) -> Metric | None:
    """The declaration of a logged metric (``test/skill``) by ``task`` (a kind), or by any task; None
    for a metric no task declares."""
    for t in [TASKS[task]] if task in TASKS else TASKS.values():
        found = t.metric(key)
        if found is not None:
            return found
    return None


def task_for(spec: DataSpec | str) -> Task:
    """The task of a data spec (or of a kind name); ValueError for an unknown kind."""
    kind = spec if isinstance(spec, str) else spec.kind
    try:
        return TASKS[kind]
    except KeyError:
        raise ValueError(f"unknown data kind {kind!r}; valid: {', '.join(TASKS)}") from None
