"""Recompute instead of store: the ``remat_chunk=K`` option of :func:`lstmlab.cells.scan`.

Training through a recurrence normally keeps every step's activations for the backward pass, so memory
grows like T * B * H * (a handful). With ``remat_chunk=K`` the sequence is cut into chunks of K steps; an
outer ``lax.scan`` runs the chunks under ``jax.checkpoint``, so only the carry entering each chunk is
kept and a chunk's activations are recomputed (one extra forward pass in total) while its backward pass
runs. What remains linear in T is the input xs and the outputs hs themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells.scan import reverse_padded

Array = jax.Array
Carry = Any
# run(carry, xs, seq_lengths) -> (final carry, hs): a scan in the forward direction.
Run = Callable[[Carry, Array, Array | None], tuple[Carry, Array]]


def check_remat_chunk(remat_chunk: int | None) -> None:
    if remat_chunk is not None and (
        isinstance(remat_chunk, bool) or not isinstance(remat_chunk, int) or remat_chunk < 1
    ):
        raise ValueError(f"remat_chunk={remat_chunk!r} must be None or an int >= 1 (time steps per chunk)")


def chunked_scan(
    run: Run, carry: Carry, xs: Array, *, chunk: int, seq_lengths: Array | None = None, reverse: bool = False
) -> tuple[Carry, Array]:
    """``run`` over ``xs`` (T, B, D) in checkpointed chunks of ``chunk`` steps; same results as
    ``run(carry, xs, seq_lengths)`` (with ``reverse`` handled as in :func:`lstmlab.cells.scan`)."""
    check_remat_chunk(chunk)
    T = xs.shape[0]
    if seq_lengths is not None:
        seq_lengths = jnp.asarray(seq_lengths)
    if reverse:
        xs = xs[::-1] if seq_lengths is None else reverse_padded(xs, seq_lengths)

    def one_chunk(carry: Carry, inputs: tuple[Array, Array]) -> tuple[Carry, Array]:
        xs_k, start = inputs
        # Steps [start, start + K) of a sequence of length L: the first clip(L - start, 0, K) are valid.
        lengths = None if seq_lengths is None else jnp.clip(seq_lengths - start, 0, xs_k.shape[0])
        return run(carry, xs_k, lengths)

    num_chunks, tail = divmod(T, chunk)
    pieces = []
    if num_chunks:
        head = xs[: num_chunks * chunk].reshape((num_chunks, chunk) + xs.shape[1:])
        starts = jnp.arange(num_chunks) * chunk
        carry, hs = jax.lax.scan(jax.checkpoint(one_chunk, prevent_cse=False), carry, (head, starts))
        pieces.append(hs.reshape((num_chunks * chunk,) + hs.shape[2:]))
    if tail:
        carry, hs = jax.checkpoint(one_chunk)(carry, (xs[num_chunks * chunk :], jnp.asarray(num_chunks * chunk)))
        pieces.append(hs)
    hs = pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=0)
    if reverse:
        hs = hs[::-1] if seq_lengths is None else reverse_padded(hs, seq_lengths)
    return carry, hs
