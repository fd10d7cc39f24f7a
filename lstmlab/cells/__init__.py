"""Functional recurrent cells: pure math on dicts of arrays, no Flax, Hydra or I/O.

The contract (see ``shared/DESIGN.md``)::

    from lstmlab import cells
    params = cells.init("lstm", key, input_size=D, hidden_size=H)        # dict of arrays
    carry = cells.initial_carry("lstm", batch_size=B, hidden_size=H)     # LSTMState(h, c)
    final_carry, hs = cells.scan("lstm", params, xs)                     # xs (T, B, D) -> hs (T, B, H)

Cells: ``lstm``, ``peephole`` (both with ``variant=``, see :mod:`lstmlab.cells.lstm`), ``gru``
(:mod:`lstmlab.cells.gru`), ``rnn`` (with ``activation=``, :mod:`lstmlab.cells.rnn`). Initialisation
options are documented in :mod:`lstmlab.cells.init`.
"""

from __future__ import annotations

import inspect
from functools import partial
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells import fast as _fast
from lstmlab.cells import gru as _gru
from lstmlab.cells import init as _init
from lstmlab.cells import lstm as _lstm
from lstmlab.cells import remat as _remat
from lstmlab.cells import rnn as _rnn
from lstmlab.cells import sharding as _sharding
from lstmlab.cells.init import INPUT_INITIALIZERS
from lstmlab.cells.lstm import VARIANTS, FGRState, LSTMState
from lstmlab.cells.rnn import ACTIVATIONS
from lstmlab.cells.sequence import reverse_padded, scan_projected, time_mask

Array = jax.Array
Carry = Any

_MODULES: dict[str, ModuleType] = {"lstm": _lstm, "peephole": _lstm, "gru": _gru, "rnn": _rnn}
CELLS: tuple[str, ...] = tuple(_MODULES)
IMPLS: tuple[str, ...] = ("fast", "reference", "cudnn")

__all__ = [
    "ACTIVATIONS", "CELLS", "FGRState", "IMPLS", "INPUT_INITIALIZERS", "LSTMState", "VARIANTS",
    "cell_options", "init", "initial_carry", "num_gates", "reverse_padded", "scan", "step", "time_mask",
]


def _module(name: str) -> ModuleType:
    if name not in _MODULES:
        raise ValueError(f"cell={name!r} is not a cell; valid: {', '.join(CELLS)}")
    return _MODULES[name]


def cell_options(name: str, **options: Any) -> dict[str, Any]:
    """Validate the options of cell ``name`` (``variant`` for the LSTM family, ``activation`` for
    ``rnn``) and return them with defaults filled in. Raises ValueError naming what is valid."""
    module = _module(name)
    valid = [p for p in inspect.signature(module.check_options).parameters if p != "name"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"cell {name!r} takes no option {unknown[0]!r}; valid: {', '.join(valid) or 'none'}"
        )
    return module.check_options(name, **options)


def num_gates(name: str) -> int:
    """Blocks of H in ``w_i``/``w_h``: 4 for the LSTM family, 3 for GRU, 1 for RNN."""
    _module(name)
    return {"lstm": 4, "peephole": 4, "gru": 3, "rnn": 1}[name]


def init(name: str, key: Array, input_size: int, hidden_size: int, *, input_init: str = "glorot_uniform",
         recurrent_scale: float = 1.0, forget_bias: float = 1.0, chrono_tmax: float = 0.0,
         dtype=jnp.float32, **options: Any) -> dict[str, Array]:
    """Parameters of cell ``name`` as a dict of arrays in the contract's layout.

    Args:
      key: PRNG key. input_size: D. hidden_size: H.
      input_init, recurrent_scale, forget_bias, chrono_tmax: see :mod:`lstmlab.cells.init`.
      options: the cell's options (``variant=`` for lstm/peephole, ``activation=`` for rnn).
    """
    opts = cell_options(name, **options)
    if int(input_size) < 1 or int(hidden_size) < 1:
        raise ValueError(f"input_size={input_size} and hidden_size={hidden_size} must be >= 1")
    _init.check_init_options(input_init, recurrent_scale, chrono_tmax)
    return _module(name).init(name, key, int(input_size), int(hidden_size), input_init=input_init,
                              recurrent_scale=recurrent_scale, forget_bias=forget_bias,
                              chrono_tmax=chrono_tmax, dtype=dtype, **opts)


def initial_carry(name: str, batch_size: int, hidden_size: int, dtype=jnp.float32,
                  **options: Any) -> Carry:
    """Zero carry: ``LSTMState(h, c)`` for the LSTM family (``FGRState`` for variant FGR), ``h`` for
    GRU and RNN; each (B, H). The LSTM cell state ``c`` is kept in at least float32."""
    opts = cell_options(name, **options)
    kwargs = {"variant": opts["variant"]} if "variant" in opts else {}
    return _module(name).initial_carry(name, batch_size, hidden_size, dtype, **kwargs)


def _hidden_size(params: dict[str, Array]) -> int:
    return params["w_h"].shape[0]


def step(name: str, params: dict[str, Array], carry: Carry, x: Array, **options: Any) -> tuple[Carry, Array]:
    """One time step on raw input ``x`` (B, D): returns (new carry, output h (B, H))."""
    module = _module(name)
    opts = cell_options(name, **options)
    carry = module.step(name, params, carry, module.project(params, x), **opts)
    return carry, module.output(carry)


def scan(name: str, params: dict[str, Array], xs: Array, carry: Carry | None = None, *,
         seq_lengths: Array | None = None, reverse: bool = False, impl: str = "fast",
         remat_chunk: int | None = None, batch_axis: str | None = None,
         **options: Any) -> tuple[Carry, Array]:
    """Run cell ``name`` over the time-major sequence ``xs`` (T, B, D).

    Returns ``(final_carry, hs)`` with ``hs`` (T, B, H). ``carry`` defaults to zeros (``h`` in the
    compute dtype, LSTM ``c`` in at least float32). ``seq_lengths`` (B,) marks right-padded sequences:
    their carry stops at their end and padded outputs are zero; ``reverse=True`` runs each sequence
    backwards within its own length, outputs in the original order. jit-, grad- and vmap-compatible.

    ``impl`` chooses the implementation: ``fast`` (default; hand-written backward pass, see
    :mod:`lstmlab.cells.fast`; cells without a fast kernel, i.e. variant FGR, silently use the
    reference; reverse-mode autodiff only), ``reference`` (autodiff through ``lax.scan``; use it for
    ``jvp``/``jacfwd``), ``cudnn`` (plain LSTM on a CUDA GPU, :mod:`lstmlab.cells.cudnn`).
    ``remat_chunk=K`` recomputes activations in the backward pass instead of storing them, in chunks
    of K steps (:mod:`lstmlab.cells.remat`): same results, far less memory for long sequences.
    ``batch_axis``: name of a mesh axis the batch is split along. Under ``jax.set_mesh(mesh)`` with
    that axis on more than one device (and B divisible by it), each device runs the recurrence on its
    own rows (:mod:`lstmlab.cells.sharding`); otherwise, and with None, it has no effect.
    """
    module = _module(name)
    opts = cell_options(name, **options)
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is not an implementation; valid: {', '.join(IMPLS)}")
    _remat.check_remat_chunk(remat_chunk)
    if xs.ndim != 3:
        raise ValueError(f"xs must be time-major (T, B, D); got shape {xs.shape}")
    T, B, _ = xs.shape
    if carry is None:
        dtype = jnp.result_type(xs.dtype, params["w_h"].dtype)
        carry = initial_carry(name, B, _hidden_size(params), dtype, **opts)
    if impl == "cudnn":
        from lstmlab.cells import cudnn as _cudnn  # imports jax.experimental.rnn only when asked for

        _cudnn.check_available(name, **opts)
        if remat_chunk is not None:
            raise ValueError("remat_chunk is not available with impl='cudnn'; use impl='fast'")
        return _cudnn.scan(params, xs, carry, seq_lengths=seq_lengths, reverse=reverse)

    def run(params: dict[str, Array], carry: Carry, xs: Array, seq_lengths: Array | None,
            reverse: bool = False):
        if impl == "fast" and _fast.supports(name, **opts):
            return _fast.scan(name, params, xs, carry, seq_lengths=seq_lengths, reverse=reverse, **opts)

        def cell_step(c, xp_t):
            return module.step(name, params, c, xp_t, **opts)

        return scan_projected(cell_step, module.output, carry, module.project(params, xs),
                              seq_lengths=seq_lengths, reverse=reverse)

    def run_all(params: dict[str, Array], carry: Carry, xs: Array, seq_lengths: Array | None):
        if remat_chunk is None:
            return run(params, carry, xs, seq_lengths, reverse)
        return _remat.chunked_scan(partial(run, params), carry, xs, chunk=remat_chunk,
                                   seq_lengths=seq_lengths, reverse=reverse)

    devices = _sharding.axis_size(batch_axis)
    if devices > 1 and B % devices == 0:
        return _sharding.split_batch(run_all, batch_axis, params, carry, xs, seq_lengths)
    return run_all(params, carry, xs, seq_lengths)
