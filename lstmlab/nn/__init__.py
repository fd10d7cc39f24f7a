"""Flax NNX modules built on :mod:`lstmlab.cells`: recurrent layers and stacks."""

from lstmlab.nn.layers import Bidirectional, Recurrent, RecurrentStack, dropout

__all__ = ["Bidirectional", "Recurrent", "RecurrentStack", "dropout"]
