"""``impl="cudnn"``: the plain LSTM through cuDNN via ``jax.experimental.rnn`` (CUDA GPUs only).

cuDNN takes one flat weight vector laid out as ``W_ih`` (4H, D), ``W_hh`` (4H, H), then ``b_ih`` (4H,),
``b_hh`` (4H,), gate order i, f, g, o (PyTorch's layout). Our ``w_i`` (D, 4H) and ``w_h`` (H, 4H) are the
transposes with the same gate order, and our single bias ``b`` goes into ``b_ih`` with ``b_hh = 0``.
:func:`pack_weights` builds that vector; gradients flow back through it to the usual parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import rnn as _rnn

from lstmlab.cells.lstm import LSTMState
from lstmlab.cells.scan import reverse_padded, time_mask

Array = jax.Array


def pack_weights(params: dict[str, Array]) -> Array:
    """lstm ``params`` (``w_i`` (D, 4H), ``w_h`` (H, 4H), ``b`` (4H,)) -> cuDNN's flat weight vector."""
    b = params["b"]
    return jnp.concatenate([params["w_i"].T.ravel(), params["w_h"].T.ravel(), b, jnp.zeros_like(b)])


def check_available(name: str, **options: object) -> None:
    """Raise a one-line ValueError unless cuDNN can run cell ``name`` with ``options`` here."""
    variant = options.get("variant")
    if name != "lstm" or variant not in ("vanilla", "NP"):
        raise ValueError(
            f"impl='cudnn' runs only cell='lstm' (variant vanilla); got cell={name!r} "
            f"variant={variant!r}; use impl='fast'"
        )
    backend = jax.default_backend()
    if backend != "gpu":
        raise ValueError(f"impl='cudnn' needs a CUDA GPU but jax's backend is {backend!r}; use impl='fast'")


def scan(
    params: dict[str, Array], xs: Array, carry: LSTMState, *, seq_lengths: Array | None = None, reverse: bool = False
) -> tuple[LSTMState, Array]:
    """The plain LSTM over ``xs`` (T, B, D) with cuDNN; same contract as :func:`lstmlab.cells.scan`."""
    T, B, D = xs.shape
    H = params["w_h"].shape[0]
    lengths = jnp.full((B,), T, jnp.int32) if seq_lengths is None else jnp.asarray(seq_lengths).astype(jnp.int32)
    if reverse:
        xs = reverse_padded(xs, lengths)
    y, h_n, c_n = _rnn.lstm(
        jnp.swapaxes(xs, 0, 1),
        carry.h[None],
        carry.c[None],
        pack_weights(params),
        lengths,
        input_size=D,
        hidden_size=H,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    hs = jnp.swapaxes(y, 0, 1)
    if seq_lengths is not None:
        hs = jnp.where(time_mask(T, lengths)[..., None], hs, 0)
    if reverse:
        hs = reverse_padded(hs, lengths)
    return LSTMState(h_n[0].astype(carry.h.dtype), c_n[0].astype(carry.c.dtype)), hs
