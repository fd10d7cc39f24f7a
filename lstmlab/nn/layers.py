"""Flax NNX recurrent layers on top of the functional cells.

Each :class:`Recurrent` layer holds its parameters under the contract's names (``w_i``, ``w_h``, ``b``,
...), so ``layer.cell_params()`` is exactly the dict :func:`lstmlab.cells.scan` takes and the module and
the function compute the same thing. Sequences are time-major (T, B, D) like the cells unless
``time_major=False`` (B, T, D).

:class:`Convolutional` is the fully convolutional block that a per-sequence model can put beside its
recurrent stack; it is batch-major (B, T, D) like the data.

Dropout is functional: pass a PRNG key as ``dropout_key`` to apply it (training), or nothing (evaluation).
That keeps the randomness explicit, so a resumed run draws the same masks as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lstmlab import cells

Array = jax.Array
Carry = Any


class Recurrent(nnx.Module):
    """One recurrent layer: cell ``cell`` of size ``hidden_size`` over inputs of size ``input_size``.

    ``learn_initial_carry`` adds trainable initial states (one (H,) vector per carry component,
    broadcast over the batch) used when no carry is passed. ``impl``, ``remat_chunk`` and ``batch_axis``
    are passed to :func:`lstmlab.cells.scan` (fast kernels by default; ``remat_chunk=K`` trades compute
    for memory; ``batch_axis``, e.g. the trainer's mesh axis ``"data"``, runs one recurrence per device
    on its rows of the batch when called under ``jax.set_mesh`` with that axis; None, the default, never
    splits). ``options`` are the cell's own (:func:`lstmlab.cells.option_names`). Parameters of the
    wrong shape (e.g. assigned from another framework) are a ValueError when the layer is called.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        *,
        rngs: nnx.Rngs,
        input_init: str = "glorot_uniform",
        recurrent_scale: float = 1.0,
        forget_bias: float = 1.0,
        chrono_tmax: float = 0.0,
        learn_initial_carry: bool = False,
        impl: str = "fast",
        remat_chunk: int | None = None,
        batch_axis: str | None = None,
        param_dtype=jnp.float32,
        **options: Any,
    ):
        self.cell = cell
        self.input_size = input_size
        self.batch_axis = batch_axis
        self.remat_chunk = remat_chunk
        self.hidden_size = hidden_size
        self.impl = impl
        # options are kept as a sorted tuple: static module attributes must be hashable under jit
        self.option_items = tuple(sorted(cells.cell_options(cell, **options).items()))
        params = cells.init(
            cell,
            rngs.params(),
            input_size,
            hidden_size,
            input_init=input_init,
            recurrent_scale=recurrent_scale,
            forget_bias=forget_bias,
            chrono_tmax=chrono_tmax,
            dtype=param_dtype,
            **self.options,
        )
        self.param_names = tuple(params)
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))
        if learn_initial_carry:
            # One Param per carry component (h, c, ...), each (H,) or (3H,) for FGR's gates.
            zero = cells.initial_carry(cell, 1, hidden_size, param_dtype, **self.options)
            self.initial = nnx.List([nnx.Param(a[0]) for a in jax.tree.leaves(zero)])
        else:
            self.initial = None

    @property
    def options(self) -> dict[str, Any]:
        """The cell's options (:func:`lstmlab.cells.option_names`) as keyword arguments."""
        return dict(self.option_items)

    def cell_params(self) -> dict[str, Array]:
        """The parameters as the plain dict of arrays that :func:`lstmlab.cells.scan` takes."""
        return {name: getattr(self, name)[...] for name in self.param_names}

    def initial_carry(self, batch_size: int, dtype=jnp.float32) -> Carry:
        """Zeros, or the learned initial carry broadcast to (batch_size, H)."""
        carry = cells.initial_carry(self.cell, batch_size, self.hidden_size, dtype, **self.options)
        if self.initial is None:
            return carry
        zeros, treedef = jax.tree.flatten(carry)
        learned = [jnp.broadcast_to(v[...], z.shape).astype(z.dtype) for z, v in zip(zeros, self.initial)]
        return jax.tree.unflatten(treedef, learned)

    def __call__(
        self, xs: Array, carry: Carry | None = None, *, seq_lengths: Array | None = None, reverse: bool = False
    ) -> tuple[Carry, Array]:
        """xs (T, B, D) -> (final carry, hs (T, B, H))."""
        if carry is None:
            carry = self.initial_carry(xs.shape[1], jnp.result_type(xs.dtype, self.w_i[...].dtype))
        params = self.cell_params()
        cells.check_params(self.cell, params, input_size=self.input_size, hidden_size=self.hidden_size, **self.options)
        return cells.scan(
            self.cell,
            params,
            xs,
            carry,
            seq_lengths=seq_lengths,
            reverse=reverse,
            impl=self.impl,
            remat_chunk=self.remat_chunk,
            batch_axis=self.batch_axis,
            **self.options,
        )


class Bidirectional(nnx.Module):
    """A forward and a backward :class:`Recurrent` layer; outputs concatenated to (T, B, 2H).

    The carry is the pair ``(forward_carry, backward_carry)``; with ``seq_lengths`` the backward layer
    reads each sequence from its own last step.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, *, rngs: nnx.Rngs, **kwargs: Any):
        self.forward = Recurrent(cell, input_size, hidden_size, rngs=rngs, **kwargs)
        self.backward = Recurrent(cell, input_size, hidden_size, rngs=rngs, **kwargs)

    def initial_carry(self, batch_size: int, dtype=jnp.float32) -> tuple[Carry, Carry]:
        """The pair (forward, backward) of :meth:`Recurrent.initial_carry`."""
        return self.forward.initial_carry(batch_size, dtype), self.backward.initial_carry(batch_size, dtype)

    def __call__(
        self, xs: Array, carry: tuple[Carry, Carry] | None = None, *, seq_lengths: Array | None = None
    ) -> tuple[tuple[Carry, Carry], Array]:
        fwd_carry, bwd_carry = carry if carry is not None else (None, None)
        fwd_carry, fwd = self.forward(xs, fwd_carry, seq_lengths=seq_lengths)
        bwd_carry, bwd = self.backward(xs, bwd_carry, seq_lengths=seq_lengths, reverse=True)
        return (fwd_carry, bwd_carry), jnp.concatenate([fwd, bwd], axis=-1)


class RecurrentStack(nnx.Module):
    """``num_layers`` recurrent layers, each followed by dropout of rate ``dropout``.

    The seed model ``LSTM(300) -> Dropout(0.2) -> LSTM(300) -> Dropout(0.2)`` is
    ``RecurrentStack("lstm", D, 300, num_layers=2, dropout=0.2)``. Returns one carry per layer and the
    last layer's outputs (T, B, H), or (T, B, 2H) when ``bidirectional``.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        time_major: bool = True,
        rngs: nnx.Rngs,
        **kwargs: Any,
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers={num_layers} must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        self.dropout = dropout
        self.time_major = time_major
        self.bidirectional = bidirectional
        self.hidden_size = hidden_size
        self.output_size = hidden_size * (2 if bidirectional else 1)
        layer_cls = Bidirectional if bidirectional else Recurrent
        sizes = [input_size] + [self.output_size] * (num_layers - 1)
        self.layers = nnx.List([layer_cls(cell, d, hidden_size, rngs=rngs, **kwargs) for d in sizes])

    def __call__(
        self,
        xs: Array,
        carries: Sequence[Carry] | None = None,
        *,
        seq_lengths: Array | None = None,
        dropout_key: Array | None = None,
    ) -> tuple[list[Carry], Array]:
        """xs (T, B, D) (or (B, T, D) if not time_major) -> (per-layer final carries, outputs).

        ``dropout_key``: PRNG key for dropout (training); None means no dropout (evaluation).
        """
        if not self.time_major:
            xs = jnp.swapaxes(xs, 0, 1)
        if carries is None:
            carries = [None] * len(self.layers)
        if len(carries) != len(self.layers):
            raise ValueError(f"got {len(carries)} carries for {len(self.layers)} layers")
        final = []
        hs = xs
        for index, (layer, carry) in enumerate(zip(self.layers, carries)):
            carry, hs = layer(hs, carry, seq_lengths=seq_lengths)
            final.append(carry)
            if dropout_key is not None and self.dropout > 0:
                hs = dropout(jax.random.fold_in(dropout_key, index), hs, self.dropout)
        if not self.time_major:
            hs = jnp.swapaxes(hs, 0, 1)
        return final, hs


class Convolutional(nnx.Module):
    """A fully convolutional block over time, pooled to one vector per sequence: for each layer a 1-D
    convolution (``channels[i]`` filters of width ``kernels[i]``, "same" padding), layer normalisation over
    the channels and a ReLU; then the masked mean over each sequence's valid steps. This is the FCN
    branch of LSTM-FCN (Karim et al. 2018), with layer instead of batch normalisation, so the model's
    output stays a function of its parameters and one sequence. Steps at or past ``seq_lengths`` are
    zeroed before every convolution, so a padded sequence gives what it gives alone.

    (B, T, D) inputs -> (B, channels[-1]).
    """

    def __init__(self, input_size: int, channels: Sequence[int], kernels: Sequence[int], *, rngs: nnx.Rngs):
        if not channels or len(channels) != len(kernels):
            raise ValueError(
                f"conv channels {list(channels)} and kernels {list(kernels)} must be non-empty lists of one length"
            )
        if min(channels) < 1 or min(kernels) < 1:
            raise ValueError(f"conv channels {list(channels)} and kernels {list(kernels)} must be >= 1")
        self.output_size = channels[-1]
        self.convs, self.norms = nnx.List(), nnx.List()
        for d, c, k in zip([input_size, *channels[:-1]], channels, kernels):
            self.convs.append(nnx.Conv(d, c, kernel_size=(k,), padding="SAME", rngs=rngs))
            self.norms.append(nnx.LayerNorm(c, rngs=rngs))

    def __call__(self, xs: Array, seq_lengths: Array | None = None) -> Array:
        B, T = xs.shape[:2]
        lengths = jnp.full((B,), T) if seq_lengths is None else seq_lengths
        mask = cells.time_mask(T, lengths).T[..., None].astype(xs.dtype)
        for conv, norm in zip(self.convs, self.norms):
            xs = jax.nn.relu(norm(conv(xs * mask)))
        return (xs * mask).sum(1) / jnp.maximum(lengths, 1)[:, None]


def dropout(key: Array, x: Array, rate: float) -> Array:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest by 1/(1-rate)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))
