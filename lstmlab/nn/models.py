"""Whole models: input (token ids or features) -> recurrent stack -> task head.

Batches are batch-major (B, T, ...) like the data layer; the model turns them time-major for the cells.
Per-step heads (language model, multilabel tagging) give (B, T, K) outputs; per-sequence heads
(classification, regression, forecasting) pool the top layer's outputs over each sequence's valid steps
(``pooling``: ``last`` valid step, masked ``mean``, or ``meanmax``: the masked mean and the masked
maximum side by side) and give (B, K). A per-sequence model can also put a fully convolutional block
beside the stack (``conv_channels``, ``conv_kernels``; LSTM-FCN), whose pooled output joins the pooled
recurrent one before the head; with ``num_layers=0`` the block alone reads the inputs (an FCN, the
ablation of the recurrent part).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lstmlab import cells
from lstmlab.config import POOLINGS
from lstmlab.nn.layers import Convolutional, RecurrentStack

Array = jax.Array
Carry = Any


class RecurrentModel(nnx.Module):
    """Embedding or features -> ``RecurrentStack`` -> dense head.

    Args:
      cell: cell name; cell_options: its options and initialisation (variant, activation, input_init,
        recurrent_scale, forget_bias, chrono_tmax).
      output_size: K, classes or target dimension.
      per_step: True for a head at every step, False for one output per sequence.
      vocab_size: token inputs (B, T) int; else ``input_size`` float features (B, T, D).
      embed_size: 0 feeds token ids as one-hot vectors, otherwise a learned embedding of this size.
      conv_channels, conv_kernels: per-sequence models only; non-empty: a :class:`Convolutional` block
        with these filters and widths reads the same inputs as the stack.
      num_layers: 0 leaves out the recurrent stack (``self.rnn`` is None); only with a convolutional block.
    """

    def __init__(
        self,
        cell: str,
        *,
        output_size: int,
        per_step: bool,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        vocab_size: int | None = None,
        input_size: int | None = None,
        embed_size: int = 0,
        pooling: str = "last",
        conv_channels: Sequence[int] = (),
        conv_kernels: Sequence[int] = (),
        learn_initial_carry: bool = False,
        impl: str | None = None,
        rngs: nnx.Rngs,
        **cell_options: Any,
    ):
        if (vocab_size is None) == (input_size is None):
            raise ValueError("give exactly one of vocab_size (token inputs) and input_size (features)")
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling={pooling!r}; valid: {', '.join(POOLINGS)}")
        if per_step and bidirectional:
            raise ValueError(
                "model.bidirectional=true needs a per-sequence task (a per-step model must not see the future)"
            )
        if per_step and (conv_channels or conv_kernels):
            raise ValueError("model.conv_channels needs a per-sequence task (its convolutions read later steps)")
        self.vocab_size = vocab_size
        self.per_step = per_step
        self.pooling = pooling
        self.embed = nnx.Embed(vocab_size, embed_size, rngs=rngs) if vocab_size and embed_size else None
        rnn_input = input_size if vocab_size is None else (embed_size or vocab_size)
        extra = {} if impl is None else {"impl": impl}
        self.conv = (
            Convolutional(rnn_input, conv_channels, conv_kernels, rngs=rngs) if conv_channels or conv_kernels else None
        )
        if num_layers == 0 and self.conv is None:
            raise ValueError("model.num_layers=0 leaves only the convolutional block: it needs model.conv_channels")
        self.rnn = (
            RecurrentStack(
                cell,
                rnn_input,
                hidden_size,
                num_layers=num_layers,
                dropout=dropout,
                bidirectional=bidirectional,
                learn_initial_carry=learn_initial_carry,
                rngs=rngs,
                **extra,
                **cell_options,
            )
            if num_layers
            else None
        )
        pooled = 0
        if self.rnn is not None:
            pooled = self.rnn.output_size * (2 if pooling == "meanmax" and not per_step else 1)
        pooled += self.conv.output_size if self.conv is not None else 0
        self.head = nnx.Linear(pooled, output_size, rngs=rngs)

    def features(self, inputs: Array) -> Array:
        """(B, T) token ids or (B, T, D) features -> (B, T, D') float inputs of the first layer."""
        if self.vocab_size is None:
            return inputs
        if self.embed is not None:
            return self.embed(inputs)
        return jax.nn.one_hot(inputs, self.vocab_size, dtype=jnp.float32)

    def __call__(
        self,
        inputs: Array,
        carries: Sequence[Carry] | None = None,
        *,
        seq_lengths: Array | None = None,
        dropout_key: Array | None = None,
    ) -> tuple[list[Carry], Array]:
        """Returns (per-layer final carries, outputs): (B, T, K) per step or (B, K) per sequence.
        Outputs are logits for classes, raw values for regression."""
        features = self.features(inputs)
        if self.rnn is None:  # the convolutional block alone
            return [], self.head(self.conv(features, seq_lengths))
        xs = jnp.swapaxes(features, 0, 1)  # time-major for the cells
        carries, hs = self.rnn(xs, carries, seq_lengths=seq_lengths, dropout_key=dropout_key)
        return carries, self.readout(hs, features, seq_lengths)

    def readout(self, hs: Array, features: Array, seq_lengths: Array | None = None) -> Array:
        """The outputs from the top layer's ``hs`` (T, B, H') and the first layer's ``features`` (B, T, D')
        (which a convolutional block reads): the head at every step, or on the pooled sequence."""
        if self.per_step:
            return self.head(jnp.swapaxes(hs, 0, 1))
        pooled = self.pool(hs, seq_lengths)
        if self.conv is not None:
            pooled = jnp.concatenate([pooled, self.conv(features, seq_lengths)], axis=-1)
        return self.head(pooled)

    def pool(self, hs: Array, seq_lengths: Array | None) -> Array:
        """(T, B, H') outputs -> (B, H') summary of each sequence's valid steps ((B, 2H') for
        ``meanmax``)."""
        T, B = hs.shape[:2]
        lengths = jnp.full((B,), T) if seq_lengths is None else seq_lengths
        if self.pooling in ("mean", "meanmax"):
            mask = cells.time_mask(T, lengths)[..., None]
            mean = (hs * mask).sum(0) / jnp.maximum(lengths, 1)[:, None]
            if self.pooling == "mean":
                return mean
            return jnp.concatenate([mean, jnp.where(mask > 0, hs, -jnp.inf).max(0)], axis=-1)
        last = jnp.take_along_axis(hs, (lengths - 1)[None, :, None], axis=0)[0]
        if self.rnn.bidirectional:
            # the backward direction has read the whole sequence at t = 0
            H = self.rnn.hidden_size
            last = jnp.concatenate([last[:, :H], hs[0, :, H:]], axis=-1)
        return last

    def initial_carries(self, batch_size: int) -> list[Carry]:
        return [layer.initial_carry(batch_size) for layer in self.rnn.layers] if self.rnn is not None else []

    def step(self, carries: Sequence[Carry], token: Array) -> tuple[list[Carry], Array]:
        """One time step of a per-step model: token (B,) ids or (B, D) features -> (carries, (B, K))."""
        x = self.features(token[:, None] if self.vocab_size else token[:, None, :])[:, 0]
        new = []
        for layer, carry in zip(self.rnn.layers, carries):
            carry, x = cells.step(layer.cell, layer.cell_params(), carry, x, **layer.options)
            new.append(carry)
        return new, self.head(x)
