"""The gradient-norm study (``python -m lstmlab +experiment=gradnorm``): vanishing versus exploding
gradients of several cells, measured on one task at initialisation and during training.

:func:`run_gradnorm_study` trains each cell of ``diagnostics.cells`` with the same config (data, size,
``cell.recurrent_scale``, ``cell.forget_bias``, ``optim.clip``, seed) by
:func:`lstmlab.train.train_and_evaluate` in ``run_dir/cells/<cell>/`` (a complete run directory each,
wandb off), with the per-timestep probes of :mod:`lstmlab.train.gradnorms` on, and then writes the
comparison into ``run_dir``:

* ``gradnorms.npz``: every cell's curves under ``<cell>/...`` (``<cell>/steps``, ``<cell>/layer0/h``
  (N, L), ``<cell>/layer0/c``, ``<cell>/jacobian/layer0`` (N, K, S); see :mod:`lstmlab.train.gradnorms`).
* ``plots/gradnorm_decay.png`` and ``plots/gradnorm_decay_trained.png``: log ``||dL/dh_t||`` against
  the distance from the loss, one line per cell, at initialisation and at the last probe;
  ``plots/gradnorm_heatmap_<cell>.png``: log norm over step t and training step;
  ``plots/jacobian_spectra.png`` and ``..._trained.png``: singular values of ``ds_T/ds_{T-k}``
  against k (largest bold), one colour per cell.
* ``decay_rates.md``: the fitted per-step decay rate of every curve, at initialisation and at the end.
* ``metrics.jsonl`` (every cell's records, keys ``<section>/<cell>/<name>``, e.g. ``train/rnn/loss``,
  ``diag/lstm/layer0/h_rate``), ``summary.json`` and ``config.yaml``, per the run-directory contract;
  the same metrics, the plots and the curves as line series go to wandb.

The whole grid of the issue is a Hydra multirun of this one command over ``cell.recurrent_scale``,
``cell.forget_bias`` and ``optim.clip``. A runner on the public training API
(:func:`lstmlab.train.train_and_evaluate`), above :mod:`lstmlab.train` and :mod:`lstmlab.diagnostics`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lstmlab.config import Config
from lstmlab.diagnostics.gradnorm import decay_table, fit_decay_rate
from lstmlab.diagnostics.plots import plot_jacobian_spectra, plot_norm_decay, plot_norm_heatmap
from lstmlab.io.lock import RunLock
from lstmlab.io.rundir import RunDir
from lstmlab.io.trackers import Trackers, WandbTracker, wandb_mode
from lstmlab.train import build_dataset, build_model, train_and_evaluate

log = logging.getLogger(__name__)
SPECTRUM_LINES = 8  # singular values per cell drawn in the Jacobian plots (gradnorms.npz has all)


def cell_configs(config: Config) -> dict[str, Config]:
    """One training config per cell of ``diagnostics.cells``: the study's config with ``cell.name``
    set (:meth:`~lstmlab.config.CellConfig.for_cell`), ``runner=train`` and wandb off (the study
    logs for all cells together)."""
    config.diagnostics.check_study()
    out = {}
    for name in config.diagnostics.cells:
        cell_config = copy.deepcopy(config)
        cell_config.cell = config.cell.for_cell(name)
        cell_config.runner = "train"
        cell_config.logger.wandb.mode = "disabled"
        out[name] = cell_config
    return out


def check_study(config: Config) -> dict[str, Config]:
    """Everything :func:`run_gradnorm_study` would reject, checked before it writes anything."""
    configs = cell_configs(config)
    config.logger.check()
    dataset = build_dataset(config)
    for cell_config in configs.values():
        cell_config.check()
        build_model(cell_config, dataset.spec)
    return configs


def run_gradnorm_study(config: Config, run_dir: str | Path) -> dict[str, Any]:
    """Train every cell of ``diagnostics.cells`` in ``run_dir/cells/<cell>`` and compare their gradient
    norms (see the module docstring); returns the summary (also in ``run_dir/summary.json``). Running
    it again with the same ``run_dir`` resumes each cell from its checkpoint."""
    run_dir = Path(run_dir).absolute()
    configs = check_study(config)
    mode = wandb_mode(config.logger.wandb.mode)
    rundir = RunDir(run_dir)
    rundir.create()
    with RunLock(run_dir):  # one writer for the study's own files; each cell's run locks its directory
        rundir.write_config(asdict(config))
        summaries = {}
        for index, (name, cell_config) in enumerate(configs.items()):
            cell_dir = rundir.cell(name).path
            log.info("gradnorm study: %s (%d/%d) in %s", name, index + 1, len(configs), cell_dir)
            summaries[name] = train_and_evaluate(cell_config, cell_dir)
        return write_study(config, run_dir, summaries, mode=mode)


def setting(config: Config, *, short: bool = False) -> str:
    """The knobs shared by every cell, for the table (``short``: for plot titles)."""
    data = config.data
    task = f"{data.get('name')} (seq_len {data.get('seq_len')})" if "seq_len" in data else str(data.get("name"))
    clip = config.optim.clip + (f" {config.optim.clip_threshold:g}" if config.optim.clip != "none" else "")
    if short:
        task = f"{data.get('name')} T={data.get('seq_len')}" if "seq_len" in data else str(data.get("name"))
        return (
            f"{task}, scale {config.cell.recurrent_scale:g}, forget bias {config.cell.forget_bias:g}, "
            f"clip {clip}, H={config.model.hidden_size}"
        )
    return (
        f"{task}, recurrent_scale {config.cell.recurrent_scale:g}, forget_bias "
        f"{config.cell.forget_bias:g}, clip {clip}, hidden_size {config.model.hidden_size}"
    )


def load_curves(run_dir: Path, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Each cell's ``gradnorms.npz`` from ``run_dir/cells/<cell>``."""
    out = {}
    for name in names:
        arrays, problem = RunDir(run_dir).cell(name).read_gradnorms(required=("steps",))
        if arrays is None:
            raise ValueError(problem or f"{RunDir(run_dir).cell(name).gradnorms}: no gradient norms were recorded")
        out[name] = arrays
    return out


def _rate_rows(curves: dict[str, dict[str, np.ndarray]]) -> tuple[dict, dict]:
    """(norm fits, Jacobian fits): name -> DecayFit for every cell, layer and state, first and last probe."""
    norm_fits, jacobian_fits = {}, {}
    for name, arrays in curves.items():
        steps = arrays["steps"]
        probes = [(0, int(steps[0]))] + ([(len(steps) - 1, int(steps[-1]))] if len(steps) > 1 else [])
        for key in sorted(k for k in arrays if k.startswith("layer")):
            for row, step in probes:
                try:
                    norm_fits[f"{name} {key}, step {step}"] = fit_decay_rate(arrays[key][row])
                except ValueError:
                    pass
        for key in sorted(k for k in arrays if k.startswith("jacobian/")):
            for row, step in probes:
                try:  # the largest singular value, distances K..1 in "time order"
                    jacobian_fits[f"{name} {key.split('/', 1)[1]}, step {step}"] = fit_decay_rate(
                        arrays[key][row][::-1, 0]
                    )
                except ValueError:
                    pass
    return norm_fits, jacobian_fits


def decay_markdown(config: Config, curves: dict[str, dict[str, np.ndarray]]) -> str:
    """The Markdown of ``decay_rates.md``."""
    norm_fits, jacobian_fits = _rate_rows(curves)
    loss = "the loss at each sequence's last step" if config.diagnostics.loss == "last" else "the loss at every step"
    text = [
        "# Gradient-norm decay rates",
        "",
        f"Setting: {setting(config)}; {loss}; probe of {config.diagnostics.batch_size or 'all'} "
        f"sequences of training batch 0.",
        "",
        "Rate: the per-step factor exp(slope) of a straight line through log norm against the distance "
        "from the loss (below 1 gradients vanish, above 1 they explode), at initialisation (step 0) and "
        "at the last probe. `h` is ||dL/dh_t||, `c` is ||dL/dc_t|| (the LSTM family and the sLSTM; the "
        "mLSTM's matrix memory C, through which alone its gradient flows back).",
        "",
        decay_table(norm_fits),
    ]
    if jacobian_fits:
        text += [
            "## Largest singular value of ds_T/ds_{T-k}",
            "",
            f"The same fit of the largest singular value against k (state: {config.diagnostics.jacobian}).",
            "",
            decay_table(jacobian_fits),
        ]
    return "\n".join(text)


def write_plots(config: Config, run_dir: Path, curves: dict[str, dict[str, np.ndarray]]) -> dict[str, Path]:
    """The study's plots (see the module docstring); name -> path."""
    plot_dir = RunDir(run_dir).plots
    where = setting(config, short=True)
    paths = {}
    last_step = {name: int(arrays["steps"][-1]) for name, arrays in curves.items()}
    for row, suffix, when in ((0, "", "at initialisation"), (-1, "_trained", "at the last probe")):
        label = {name: name if row == 0 else f"{name} (step {last_step[name]})" for name in curves}
        paths[f"gradnorm_decay{suffix}"] = plot_norm_decay(
            {label[n]: a["layer0/h"][row] for n, a in curves.items()},
            plot_dir / f"gradnorm_decay{suffix}.png",
            title=f"||dL/dh_t|| {when}, layer 0\n{where}",
            ylabel="||dL/dh_t||",
        )
        spectra = {
            label[n]: a["jacobian/layer0"][row][:, :SPECTRUM_LINES] for n, a in curves.items() if "jacobian/layer0" in a
        }
        if spectra:
            paths[f"jacobian_spectra{suffix}"] = plot_jacobian_spectra(
                spectra,
                plot_dir / f"jacobian_spectra{suffix}.png",
                title=f"Singular values of ds_T/ds_T-k {when} (largest bold), layer 0\n{where}",
            )
    for name, arrays in curves.items():
        paths[f"gradnorm_heatmap_{name}"] = plot_norm_heatmap(
            arrays["layer0/h"],
            plot_dir / f"gradnorm_heatmap_{name}.png",
            steps=arrays["steps"],
            title=f"{name}: log10 ||dL/dh_t|| over training, layer 0",
        )
    return paths


def merged_records(run_dir: Path, names: list[str]) -> list[dict[str, Any]]:
    """Every cell's ``metrics.jsonl`` records merged by step, keys ``<section>/<cell>/<name>``."""
    by_step: dict[int, dict[str, Any]] = {}
    for name in names:
        for record in RunDir(run_dir).cell(name).read_metrics():
            merged = by_step.setdefault(int(record.pop("step")), {})
            for key, value in record.items():
                section, _, rest = key.partition("/")
                merged[f"{section}/{name}/{rest}" if rest else f"{section}/{name}"] = value
    return [{"step": step, **by_step[step]} for step in sorted(by_step)]


def write_study(
    config: Config,
    run_dir: Path,
    summaries: dict[str, dict[str, Any]],
    *,
    mode: str = "disabled",
) -> dict[str, Any]:
    """Write the study's comparison files from the cells' run directories, log them; return the summary."""
    names = list(summaries)
    curves = load_curves(run_dir, names)
    rundir = RunDir(run_dir)
    rundir.write_gradnorms({f"{name}/{key}": value for name, arrays in curves.items() for key, value in arrays.items()})
    paths = write_plots(config, run_dir, curves)
    rundir.write_decay_rates(decay_markdown(config, curves))

    summary: dict[str, Any] = {
        "step": max(int(s["step"]) for s in summaries.values()),
        "cells": names,
        "setting": setting(config),
    }
    for name, cell_summary in summaries.items():
        for key, value in cell_summary.items():
            section, _, rest = key.partition("/")
            if rest and isinstance(value, (int, float)):
                summary[f"{section}/{name}/{rest}"] = value
        for key in (k for k in curves[name] if k.startswith("layer")):
            for row, when in ((0, "_init"), (-1, "")):
                try:
                    summary[f"diag/{name}/{key}_rate{when}"] = fit_decay_rate(curves[name][key][row]).rate
                except ValueError:
                    pass
    rundir.write_summary(summary)

    rundir.reset_metrics()  # rebuilt from the cells' files every time
    trackers = Trackers(rundir.metrics())
    exit_code = 1
    try:
        if mode != "disabled":
            trackers.trackers.append(
                WandbTracker(
                    run_dir,
                    asdict(config),
                    mode=mode,
                    project=config.logger.wandb.project,
                    entity=config.logger.wandb.entity,
                    tags=list(config.logger.wandb.tags),
                    name=run_dir.name,
                )
            )
        for record in merged_records(run_dir, names):
            trackers.log(record.pop("step"), record)
        step = summary["step"]
        trackers.log_plots(step, paths)
        for row, suffix in ((0, "init"), (-1, "trained")):
            norms = {name: a["layer0/h"][row] for name, a in curves.items()}
            length = min(len(v) for v in norms.values())
            trackers.log_series(
                step,
                f"diag/decay_{suffix}",
                np.arange(length)[::-1],
                {name: v[-length:] for name, v in norms.items()},
                xname="distance from the loss",
            )
            spectra = {name: a["jacobian/layer0"][row][:, 0] for name, a in curves.items() if "jacobian/layer0" in a}
            if spectra:
                K = min(len(v) for v in spectra.values())
                trackers.log_series(
                    step,
                    f"diag/jacobian_{suffix}",
                    np.arange(1, K + 1),
                    {name: v[:K] for name, v in spectra.items()},
                    xname="distance k",
                )
        trackers.summary({k: v for k, v in summary.items() if isinstance(v, (int, float))})
        exit_code = 0
    finally:
        trackers.finish(exit_code)
    return summary
