"""Gradient-norm studies: why plain RNN gradients vanish or explode and why the LSTM's do not.

* :func:`state_grad_norms`: ``||dL/dh_t||`` (and ``||dL/dc_t||``) at every step of every layer, in one
  backward pass (zero probes on the carry); :func:`norm_curves` averages them over the batch.
* :func:`fit_decay_rate`: the per-step decay rate of such a curve; :func:`decay_table` in Markdown.
* :func:`state_jacobian_spectra`: singular values of ``ds_T/ds_{T-k}`` along real trajectories.
* :mod:`~lstmlab.diagnostics.plots`: log norm against distance, heat map over training, Jacobian spectra.
* :func:`clipping`, :func:`grad_metrics`: gradient clipping for optax and the ``grad/...`` metrics to log.

Pure functions on arrays: no Flax, Hydra or training loop here. The one exception,
:mod:`lstmlab.diagnostics.study` (``run_gradnorm_study``, the ``gradnorm`` experiment), drives the trainer
and is therefore not imported by this package.
"""

from lstmlab.diagnostics.clipping import (
    CLIPS, check_clip, clip_factor, clip_grads, clipping, global_norm, grad_metrics, param_name,
)
from lstmlab.diagnostics.gradnorm import (
    DecayFit, StateGradNorms, as_layers, batch_mean, decay_table, fit_decay_rate, norm_curves,
    state_grad_norms,
)
from lstmlab.diagnostics.jacobian import STATES, state_jacobian_spectra
from lstmlab.diagnostics.plots import plot_jacobian_spectra, plot_norm_decay, plot_norm_heatmap

__all__ = [
    "CLIPS", "STATES", "DecayFit", "StateGradNorms", "as_layers", "batch_mean", "check_clip",
    "clip_factor", "clip_grads", "clipping", "decay_table", "fit_decay_rate", "global_norm",
    "grad_metrics", "norm_curves", "param_name", "plot_jacobian_spectra", "plot_norm_decay",
    "plot_norm_heatmap", "state_grad_norms", "state_jacobian_spectra",
]
