"""Flax NNX modules built on :mod:`lstmlab.cells`: recurrent layers, stacks and whole models."""

from lstmlab.nn.layers import Bidirectional, Convolutional, Recurrent, RecurrentStack, dropout
from lstmlab.nn.models import RecurrentModel

__all__ = ["Bidirectional", "Convolutional", "Recurrent", "RecurrentModel", "RecurrentStack", "dropout"]
