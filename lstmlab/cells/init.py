"""Initialisation of cell parameters, all in one place.

Every cell draws its weights the same way, so a study can change one knob at a time:

* input weights ``w_i`` (D, G*H): each gate's (D, H) block is drawn separately by the named
  initialiser ``input_init`` (default ``"glorot_uniform"``), so its fan-out is H. (Keras draws the whole
  (D, 4H) kernel at once, fan-out 4H, which gives a smaller scale.) ``"uniform"`` is PyTorch's
  U(-1/sqrt(H), 1/sqrt(H)) for ``w_i`` only: ``w_h`` and the biases still follow the rules below.
* recurrent weights ``w_h`` (H, G*H): each gate's (H, H) block is a random orthogonal matrix times
  ``recurrent_scale``, so every block has all singular values (and spectral radius) equal to
  ``recurrent_scale``. This is the knob of the vanishing/exploding-gradient studies.
* biases are zero, except the gate that keeps the old state: the LSTM forget gate and the GRU update
  gate ``z`` start at ``forget_bias`` (default 1.0, Jozefowicz, Zaremba & Sutskever 2015; Gers et al.
  2000 already recommended a positive forget bias).
* ``chrono_tmax`` T > 0 replaces that constant by chrono initialisation (Tallec & Ollivier 2018, "Can
  recurrent neural networks warp time?"): each unit's forget bias is drawn as log(U(1, T - 1)), so the
  units start with memory time scales spread up to about T steps, and the LSTM input-gate bias is its
  negative. T is the longest dependency expected, in time steps (e.g. the copy task's delay). The draw
  uses ``fold_in(key, 1)``, so the other parameters are the same with and without it. 0 (default): off.
* peephole weights ``p_i``, ``p_f``, ``p_o`` (H,) start at zero (the cell then starts as a plain LSTM);
  the full-gate-recurrence weights ``w_fgr`` (3H, 3H) start at zero too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


def _pytorch_uniform(key: Array, shape: tuple[int, ...], dtype) -> Array:
    # PyTorch's nn.LSTM/GRU/RNN draw every weight from U(-k, k) with k = 1/sqrt(hidden_size).
    bound = 1.0 / jnp.sqrt(shape[-1])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


INPUT_INITIALIZERS: dict[str, Callable] = {
    "glorot_uniform": jax.nn.initializers.glorot_uniform(),
    "glorot_normal": jax.nn.initializers.glorot_normal(),
    "lecun_uniform": jax.nn.initializers.lecun_uniform(),
    "lecun_normal": jax.nn.initializers.lecun_normal(),
    "he_uniform": jax.nn.initializers.he_uniform(),
    "he_normal": jax.nn.initializers.he_normal(),
    "orthogonal": jax.nn.initializers.orthogonal(),
    "uniform": _pytorch_uniform,
}


def check_init_options(input_init: str, recurrent_scale: float, chrono_tmax: float = 0.0) -> None:
    if input_init not in INPUT_INITIALIZERS:
        raise ValueError(f"input_init={input_init!r} is not an initialiser; valid: {', '.join(INPUT_INITIALIZERS)}")
    if not recurrent_scale >= 0:
        raise ValueError(f"recurrent_scale={recurrent_scale!r} must be >= 0")
    if not (chrono_tmax == 0 or chrono_tmax > 2):
        raise ValueError(f"chrono_tmax={chrono_tmax!r} must be 0 (off) or > 2 (time steps)")


@dataclass(frozen=True)
class InitOptions:
    """How a cell's parameters are drawn: what every cell's ``init`` receives besides its own options.
    ``input_init`` names the input weights' initialiser (:data:`INPUT_INITIALIZERS`); the recurrent
    weights are orthogonal blocks times ``recurrent_scale``; ``forget_bias`` is the forget (GRU: update)
    gate's bias, or with ``chrono_tmax`` > 2 that bias is drawn by chrono initialisation."""

    input_init: str = "glorot_uniform"
    recurrent_scale: float = 1.0
    forget_bias: float = 1.0
    chrono_tmax: float = 0.0
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        check_init_options(self.input_init, self.recurrent_scale, self.chrono_tmax)


def chrono_bias(key: Array, hidden_size: int, chrono_tmax: float, dtype) -> Array:
    """(hidden_size,) forget biases log(U(1, chrono_tmax - 1)) (chrono initialisation), drawn with
    ``fold_in(key, 1)`` so that the cell's other draws from ``key`` are unchanged."""
    u = jax.random.uniform(jax.random.fold_in(key, 1), (hidden_size,), jnp.float32, 1.0, chrono_tmax - 1.0)
    return jnp.log(u).astype(dtype)


def input_weights(key: Array, input_size: int, hidden_size: int, num_gates: int, input_init: str, dtype) -> Array:
    """(input_size, num_gates * hidden_size), one independently drawn block per gate."""
    init = INPUT_INITIALIZERS[input_init]
    keys = jax.random.split(key, num_gates)
    return jnp.concatenate([init(k, (input_size, hidden_size), dtype) for k in keys], axis=1)


def recurrent_weights(key: Array, hidden_size: int, num_gates: int, recurrent_scale: float, dtype) -> Array:
    """(hidden_size, num_gates * hidden_size): each (H, H) block orthogonal times recurrent_scale."""
    ortho = jax.nn.initializers.orthogonal()
    keys = jax.random.split(key, num_gates)
    blocks = [ortho(k, (hidden_size, hidden_size), jnp.float32) * recurrent_scale for k in keys]
    return jnp.concatenate(blocks, axis=1).astype(dtype)
