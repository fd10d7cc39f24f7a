"""The unitary evolution RNN (Arjovsky, Shah & Bengio 2016, "Unitary evolution recurrent neural
networks", ICML), with the paper's parameterisation of the recurrent matrix (Sec. 3, Eq. 6)::

    W = D3 R2 F^-1 D2 P R1 F D1

a product of unitary factors: ``D_j = diag(exp(i theta_j))`` diagonal phase matrices, ``R_j = I - 2 v_j
v_j^* / ||v_j||^2`` complex reflections, ``P`` a fixed permutation and ``F``, ``F^-1`` the unitary
discrete Fourier transform and its inverse. ``W`` is unitary for any parameters, so ``||W h|| = ||h||``.

The hidden state ``h`` is complex with N = H/2 units. One step, with ``x_t`` (B, D)::

    z = W h_{t-1} + V x_t                        V complex: x_t @ w_i + b_i = [Re(V x_t), Im(V x_t)]
    h_t = modReLU(z) = (|z| + b) z / |z|  where |z| + b >= 0, else 0      (Sec. 4, Eq. 8)

The output is ``[Re(h_t), Im(h_t)]`` (B, H), the real vector the paper's output layer reads (Eq. 7);
the carry is that same real (B, H) array. ``|z|`` is ``sqrt(Re^2 + Im^2 + 1e-12)``, so that modReLU
and its gradient stay finite at z = 0.

Parameters: ``w_i`` (D, H) as [Re V, Im V] and its bias ``b_i`` (H,) (zero at first; the paper's V has
none), ``theta`` (3, H/2) the phases of D1, D2, D3, ``reflect`` (4, H/2) as [Re v1, Im v1, Re v2, Im v2],
and ``b`` (H/2,) the modReLU bias. ``P`` is no parameter: it is one permutation of N drawn by NumPy's
generator with seed 0, the same for every uRNN of that size. Initialisation as in the paper (Sec. 4):
phases uniform in [-pi, pi), reflection vectors uniform in [-1, 1), the modReLU bias zero; the input
weights by ``input_init`` (one (D, N) block each for the real and imaginary parts). ``forget_bias``,
``chrono_tmax`` and ``recurrent_scale`` do not apply (W is unitary).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstmlab.cells import init as _init
from lstmlab.cells.base import Cell

Array = jax.Array
Params = dict[str, Array]

EPS = 1e-12


@functools.cache
def permutation(n: int) -> np.ndarray:
    """The fixed permutation P of a uRNN with n complex units (NumPy's generator with seed 0)."""
    return np.random.default_rng(0).permutation(n)


def reflection(z: Array, re: Array, im: Array) -> Array:
    """``(I - 2 v v^* / ||v||^2) z`` for ``v = re + i im`` (N,), on rows of z (B, N)."""
    v = re + 1j * im
    coefficient = (z @ jnp.conj(v)) / jnp.sum(re * re + im * im)  # v^* z per row
    return z - 2 * coefficient[:, None] * v[None, :]


def recurrent(params: Params, h: Array) -> Array:
    """``W h`` for complex rows h (B, N): D3 R2 F^-1 D2 P R1 F D1 h."""
    phases = jnp.exp(1j * params["theta"])
    r = params["reflect"]
    z = h * phases[0]
    z = jnp.fft.fft(z, norm="ortho")
    z = reflection(z, r[0], r[1])
    z = z[:, permutation(h.shape[-1])]
    z = z * phases[1]
    z = jnp.fft.ifft(z, norm="ortho")
    z = reflection(z, r[2], r[3])
    return z * phases[2]


def mod_relu(z: Array, b: Array) -> Array:
    """modReLU of complex z (B, N) with real bias b (N,)."""
    magnitude = jnp.sqrt(jnp.real(z) ** 2 + jnp.imag(z) ** 2 + EPS)
    return z * (jax.nn.relu(magnitude + b) / magnitude)


class URNN(Cell):
    """The unitary evolution RNN; no options. ``hidden_size`` H is twice its N complex units."""

    num_gates = 1
    input_bias = "b_i"
    hidden_multiple = (2, "it has hidden_size / 2 complex units")

    def param_shapes(self, **options: Any) -> dict[str, tuple[str, ...]]:
        return {"w_i": ("D", "H"), "b_i": ("H",), "theta": ("3", "H/2"), "reflect": ("4", "H/2"), "b": ("H/2",)}

    def init(self, key: Array, input_size: int, hidden_size: int, how: _init.InitOptions, **options: Any) -> Params:
        N, dtype = hidden_size // 2, how.dtype
        k_i, k_theta, k_v = jax.random.split(key, 3)
        return {
            "w_i": _init.input_weights(k_i, input_size, N, 2, how.input_init, dtype),
            "b_i": jnp.zeros((hidden_size,), dtype),
            "theta": jax.random.uniform(k_theta, (3, N), dtype, -jnp.pi, jnp.pi),
            "reflect": jax.random.uniform(k_v, (4, N), dtype, -1.0, 1.0),
            "b": jnp.zeros((N,), dtype),
        }

    def gates(self, params: Params, xp: Array, h: Array, **options: Any) -> dict[str, Array]:
        """One step from ``xp`` = x_t @ w_i + b_i (B, H): the pre-activation ``z`` and the new state
        ``h``, each as [Re, Im] (B, H)."""
        N = h.shape[-1] // 2
        complex_h = h[:, :N] + 1j * h[:, N:]
        z = recurrent(params, complex_h) + (xp[:, :N] + 1j * xp[:, N:])
        new = mod_relu(z, params["b"])
        as_real = lambda c: jnp.concatenate([jnp.real(c), jnp.imag(c)], axis=-1)  # noqa: E731
        return {"z": as_real(z), "h": as_real(new).astype(h.dtype)}

    def forward(self, params: Params, xp: Array, h: Array, **options: Any) -> tuple[Array, None]:
        return self.gates(params, xp, h)["h"], None


CELL = URNN()
