"""Gradient-norm studies: why plain RNN gradients vanish or explode and why the LSTM's do not.

* :func:`state_grad_norms`: ``||dL/dh_t||`` (and ``||dL/dc_t||``) at every step of every layer, in one
  backward pass (zero probes on the carry); :func:`norm_curves` averages them over the batch.
* :func:`fit_decay_rate`: the per-step decay rate of such a curve; :func:`decay_table` in Markdown.
* :func:`state_jacobian_spectra`: singular values of ``ds_T/ds_{T-k}`` along real trajectories.
* :mod:`~lstmlab.diagnostics.plots`: log norm against distance, heat map over training, Jacobian spectra.
* :func:`grad_metrics`: the ``grad/...`` metrics a trainer logs (norms, and what clipping does to them).
* :mod:`~lstmlab.diagnostics.gates`: per-layer gate activations of a trained stack, their saturation, and
  units whose activation tracks features of the text; :mod:`~lstmlab.diagnostics.cellviz` draws them.

Pure functions on arrays: no Flax, Hydra or training loop here. The gradient-norm study that trains
several cells with them is :mod:`lstmlab.study`, a runner above the trainer.
"""

from lstmlab.diagnostics.gates import (
    find_cells,
    layer_activations,
    saturation,
    saturation_summary,
    text_features,
)
from lstmlab.diagnostics.gradmetrics import (
    CLIPS,
    check_clip,
    clip_factor,
    clip_grads,
    global_norm,
    grad_metrics,
    param_name,
)
from lstmlab.diagnostics.gradnorm import (
    DecayFit,
    StateGradNorms,
    as_layers,
    batch_mean,
    decay_table,
    fit_decay_rate,
    norm_curves,
    state_grad_norms,
)
from lstmlab.diagnostics.jacobian import STATES, state_jacobian_spectra
from lstmlab.diagnostics.plots import plot_jacobian_spectra, plot_norm_decay, plot_norm_heatmap

__all__ = [
    "CLIPS",
    "STATES",
    "DecayFit",
    "StateGradNorms",
    "as_layers",
    "batch_mean",
    "check_clip",
    "clip_factor",
    "clip_grads",
    "decay_table",
    "find_cells",
    "fit_decay_rate",
    "global_norm",
    "grad_metrics",
    "layer_activations",
    "norm_curves",
    "param_name",
    "plot_jacobian_spectra",
    "plot_norm_decay",
    "plot_norm_heatmap",
    "saturation",
    "saturation_summary",
    "state_grad_norms",
    "state_jacobian_spectra",
    "text_features",
]
