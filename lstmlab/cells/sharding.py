"""One recurrence per device: the batch of a scan split over a mesh axis with ``jax.shard_map``.

Only an explicit ``cells.scan(..., batch_axis=name)`` under ``jax.set_mesh(mesh)`` splits; the ambient mesh
alone never does. Leaving the partitioning of the time loop to the compiler (GSPMD) is slow on CPU;
splitting explicitly runs each device's loop on its own rows with no communication inside the loop, and
the weight gradients are summed over the axis once, after it (``shard_map``'s transpose of the replicated
parameters). Timings are in ``scripts/bench_notes.md``. Results equal the unsplit scan up to the order of
that sum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import PartitionSpec as P

Array = jax.Array
Carry = Any


def axis_size(axis: str | None) -> int:
    """Devices along mesh axis ``axis`` of the current mesh (``jax.set_mesh``); 1 if there is none."""
    if axis is None:
        return 1
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or axis not in mesh.axis_names:
        return 1
    return int(mesh.shape[axis])


def split_batch(
    run: Callable[..., tuple[Carry, Array]],
    axis: str,
    params: dict[str, Array],
    carry: Carry,
    xs: Array,
    seq_lengths: Array | None,
) -> tuple[Carry, Array]:
    """``run(params, carry, xs, seq_lengths) -> (carry, hs)`` on each device's rows of the batch.

    ``xs`` (T, B, D) and ``hs`` (T, B, H) are split on axis 1, the carry's (B, ...) leaves and
    ``seq_lengths`` (B,) on axis 0; ``params`` are replicated. B must be divisible by the axis size.
    """
    rows = jax.tree.map(lambda _: P(axis), carry)
    # seq_lengths=None is an empty pytree: its spec P(axis) then applies to nothing.
    # check_vma=False: the kernels make fresh zero carries and masks inside, which shard_map's
    # varying-axis check would reject; the transpose still sums the parameters' cotangents over `axis`.
    return jax.shard_map(
        run, in_specs=(P(), rows, P(None, axis), P(axis)), out_specs=(rows, P(None, axis)), check_vma=False
    )(params, carry, xs, seq_lengths)
