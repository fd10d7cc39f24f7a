"""Running a cell over a sequence: the scan behind :func:`lstmlab.cells.scan`.

The input projection ``xs @ w_i + b`` is one matrix multiply over all T*B rows before the loop, so the
``lax.scan`` body carries only the recurrent matrix multiply and the elementwise gate math.

Right-padded batches: with ``seq_lengths`` (B,) the carry of sequence b stops changing after
``seq_lengths[b]`` steps and its outputs there are zero. ``reverse=True`` runs each sequence backwards
*within its own length* (padding stays at the end), and outputs are returned in the original time order.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Carry = Any


def reverse_padded(xs: Array, seq_lengths: Array) -> Array:
    """Reverse each sequence of the time-major batch ``xs`` (T, B, ...) within its length (B,).

    Steps at or past a sequence's length stay where they are. Applying it twice gives ``xs`` back.
    """
    T = xs.shape[0]
    t = jnp.arange(T)[:, None]  # (T, 1)
    lengths = seq_lengths[None, :]  # (1, B)
    src = jnp.where(t < lengths, lengths - 1 - t, t)  # (T, B)
    src = src.reshape(src.shape + (1,) * (xs.ndim - 2))
    return jnp.take_along_axis(xs, src, axis=0)


def time_mask(T: int, seq_lengths: Array) -> Array:
    """(T, B) boolean: True where step t is inside sequence b."""
    return jnp.arange(T)[:, None] < seq_lengths[None, :]


def scan_projected(step: Callable[[Carry, Array], Carry], output: Callable[[Carry], Array],
                   carry: Carry, xp: Array, *, seq_lengths: Array | None = None,
                   reverse: bool = False) -> tuple[Carry, Array]:
    """Scan ``step`` over the projected inputs ``xp`` (T, B, G*H); return (final carry, outputs (T, B, H)).

    This is the reference implementation (plain autodiff through ``lax.scan``).
    """

    def keep_dtypes(new: Carry, old: Carry) -> Carry:
        return jax.tree.map(lambda n, o: n.astype(o.dtype), new, old)

    if seq_lengths is None:
        def body(c, xp_t):
            c = keep_dtypes(step(c, xp_t), c)
            return c, output(c)

        return jax.lax.scan(body, carry, xp, reverse=reverse)

    seq_lengths = jnp.asarray(seq_lengths)
    if reverse:
        xp = reverse_padded(xp, seq_lengths)
    mask = time_mask(xp.shape[0], seq_lengths)

    def masked_body(c, inputs):
        xp_t, m_t = inputs
        new = keep_dtypes(step(c, xp_t), c)
        c = jax.tree.map(lambda n, o: jnp.where(m_t[:, None], n, o), new, c)
        out = output(c)
        return c, jnp.where(m_t[:, None], out, jnp.zeros_like(out))

    carry, hs = jax.lax.scan(masked_body, carry, (xp, mask))
    if reverse:
        hs = reverse_padded(hs, seq_lengths)
    return carry, hs
