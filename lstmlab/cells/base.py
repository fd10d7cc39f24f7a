"""What a cell is: the interface every registered cell implements, and helpers for writing one.

A cell is an object (an instance of :class:`Cell`, or anything with the same attributes) that holds one
recurrence's equations and nothing else; :mod:`lstmlab.cells.scan` runs it over time. With ``x_t``
(B, D), the carry entering step t and ``xp_t = x_t @ w_i + params[input_bias]`` (B, G*H):

``forward(params, xp_t, carry, **options) -> (new_carry, saved)``
    One step: the recurrent matrix multiply and the gate math. ``saved`` is what ``backward`` needs
    (a pytree of (B, ...) arrays, or None); the loop stacks it over time.
``output(carry) -> h`` (B, H)
    The step's output.
``backward(params, saved, h_prev, h, state, d_carry, dh, **options) -> (dz, d_carry_prev, state_prev)``
    The hand-derived derivative of ``forward``: from the cotangent ``d_carry`` of the new carry and ``dh``
    of the output, the per-step gradients ``dz`` (a pytree of (B, ...) arrays, stacked over time by the
    loop) and the cotangent of the carry that entered the step, including the path through the
    recurrent matrix. ``h_prev`` (B, H) is the output that entered the step, ``h`` (B, H) the one it made,
    ``state`` any per-cell value carried backwards through time (``backward_state`` of the final carry
    at the last step; ``state_prev`` is the value for the step before). ``params`` here also holds
    ``"<key>.T"``, the transpose of each matrix, made once outside the loop: use ``params["w_h.T"]``
    for ``dz @ w_h^T`` so that the loop multiplies by a matrix in its natural layout.
``grads(params, dzs, saveds, h_prevs, final_carry, **options) -> (dxp, param_grads)``
    After the backward loop, with every pytree stacked over time (leading T axis): ``dxp`` (T, B, G*H),
    the gradient of the projected inputs (the loop turns it into those of ``xs``, ``w_i`` and the input
    bias as one matrix multiply each), and a dict with the gradients of the other parameters (missing
    keys get zeros).

Optional: ``gates(params, xp_t, carry, **options) -> dict[str, Array]``, the step's activations by name
(gates, candidate, new state), each (B, ...); ``forward`` should be written on top of it so that the
equations exist once. :func:`lstmlab.cells.scan_gates` runs it over a sequence.

Optional: ``sequence(params, xps, carry, mask, **options) -> (final_carry, hs)``, the whole sequence at
once from the projected inputs ``xps`` (T, B, G*H), for cells with a parallel form (a scan over time
that is not a step-by-step loop). ``mask`` (T, B) is None or a prefix of valid steps: the carry must
stop changing after a sequence's last valid step and ``hs`` be zero past it. ``has_sequence(**options)``
says whether the options choose it; :func:`lstmlab.cells.scan` then runs it instead of the loop.

Plus ``num_gates`` (G), ``input_bias`` (the bias key added to ``x @ w_i``), ``options`` (option name ->
default), ``hidden_multiple`` ((k, why): H must be a multiple of k), ``check_options``, ``param_shapes``,
``init`` and ``initial_carry``, documented below. ``has_backward(**options)`` says whether
``backward``/``grads`` exist for these options; if not, ``impl="fast"`` falls back to autodiff through
the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells.init import InitOptions

Array = jax.Array
Carry = Any
Params = dict[str, Array]


class Cell:
    """Base class of a cell; subclasses set the attributes and write the equations."""

    num_gates: int = 1
    input_bias: str = "b"
    options: Mapping[str, Any] = {}
    #: the hidden size must be a multiple of this, for the reason given (e.g. complex units in pairs)
    hidden_multiple: tuple[int, str] = (1, "")

    def check_options(self, **options: Any) -> dict[str, Any]:
        """Validate option values (all options present, defaults filled in); return them."""
        return dict(options)

    def param_shapes(self, **options: Any) -> dict[str, tuple[str, ...]]:
        """Parameter shapes in symbols: ``"D"`` input size, ``"H"`` hidden size, ``"kH"`` k * H."""
        G = self.num_gates
        gh = f"{G}H" if G > 1 else "H"
        return {"w_i": ("D", gh), "w_h": ("H", gh), self.input_bias: (gh,)}

    def init(self, key: Array, input_size: int, hidden_size: int, how: InitOptions, **options: Any) -> Params:
        """The parameters, drawn as ``how`` says (:class:`~lstmlab.cells.init.InitOptions`), for the
        cell's ``options``."""
        raise NotImplementedError

    def initial_carry(self, batch_size: int, hidden_size: int, dtype: Any, **options: Any) -> Carry:
        """Zero carry; by default just ``h`` (B, H)."""
        return jnp.zeros((batch_size, hidden_size), dtype)

    def output(self, carry: Carry) -> Array:
        return carry

    def forward(self, params: Params, xp: Array, carry: Carry, **options: Any) -> tuple[Carry, Any]:
        raise NotImplementedError

    def gates(self, params: Params, xp: Array, carry: Carry, **options: Any) -> dict[str, Array]:
        """The activations of one step by name (optional; see the module docstring)."""
        raise NotImplementedError

    def has_gates(self) -> bool:
        return type(self).gates is not Cell.gates

    def has_backward(self, **options: Any) -> bool:
        return type(self).backward is not Cell.backward

    def has_sequence(self, **options: Any) -> bool:
        """True if these options choose :meth:`sequence` over the step-by-step loop."""
        return False

    def sequence(
        self, params: Params, xps: Array, carry: Carry, mask: Array | None, **options: Any
    ) -> tuple[Carry, Array]:
        """The whole sequence at once (optional; see the module docstring)."""
        raise NotImplementedError

    def backward_state(self, carry: Carry, **options: Any) -> Any:
        return None

    def backward(
        self, params: Params, saved: Any, h_prev: Array, h: Array, state: Any, d_carry: Carry, dh: Array, **options: Any
    ) -> tuple[Any, Carry, Any]:
        raise NotImplementedError

    def grads(
        self, params: Params, dzs: Any, saveds: Any, h_prevs: Array, final_carry: Carry, **options: Any
    ) -> tuple[Array, Params]:
        raise NotImplementedError


def matmul_tn(a: Array, b: Array) -> Array:
    """Sum over time and batch of ``a_t^T b_t``: (T, B, M), (T, B, N) -> (M, N), as one 2-D matmul."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def sum_tb(a: Array) -> Array:
    """Sum over time and batch: (T, B, N) -> (N,)."""
    return a.sum(axis=(0, 1))
