"""The parameter layout contract: weights in PyTorch's / cuDNN's layout port to lstmlab by transposing
(and, for LSTM and RNN, summing the two biases), with no reshuffling of gate blocks.

PyTorch's layout (nn.LSTM, nn.GRU, nn.RNN, single layer): ``weight_ih`` (G*H, D), ``weight_hh`` (G*H, H),
``bias_ih`` and ``bias_hh`` (G*H,), gate rows in the order i, f, g, o (LSTM) or r, z, n (GRU). The first
tests compute one step by hand from that layout with NumPy; the last ones cross-check whole sequences
against torch itself when it is installed (it is an optional dependency, ``pip install torch==2.13.0``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from lstmlab import cells

B, D, H = 2, 3, 4


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def torch_style_weights(num_gates, seed):
    rng = np.random.default_rng(seed)
    return {
        "weight_ih": rng.uniform(-0.5, 0.5, (num_gates * H, D)).astype(np.float32),
        "weight_hh": rng.uniform(-0.5, 0.5, (num_gates * H, H)).astype(np.float32),
        "bias_ih": rng.uniform(-0.5, 0.5, (num_gates * H,)).astype(np.float32),
        "bias_hh": rng.uniform(-0.5, 0.5, (num_gates * H,)).astype(np.float32),
    }


def to_lstmlab(name, w):
    """The porting rule documented in the contract: transpose, and sum the biases where lstmlab has one."""
    params = {"w_i": jnp.asarray(w["weight_ih"].T), "w_h": jnp.asarray(w["weight_hh"].T)}
    if name == "gru":  # reset-after keeps b_hn inside r * (...), so GRU keeps both biases
        params.update(b_i=jnp.asarray(w["bias_ih"]), b_h=jnp.asarray(w["bias_hh"]))
    else:
        params["b"] = jnp.asarray(w["bias_ih"] + w["bias_hh"])
    return params


def test_lstm_step_from_pytorch_layout_by_hand():
    w = torch_style_weights(4, seed=0)
    rng = np.random.default_rng(1)
    x, h0, c0 = (rng.standard_normal(s).astype(np.float32) for s in [(B, D), (B, H), (B, H)])

    gates = x @ w["weight_ih"].T + w["bias_ih"] + h0 @ w["weight_hh"].T + w["bias_hh"]
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))  # rows of weight_ih: i, f, g, o
    c1 = sigmoid(f) * c0 + sigmoid(i) * np.tanh(g)
    h1 = sigmoid(o) * np.tanh(c1)

    carry, out = cells.step(
        "lstm", to_lstmlab("lstm", w), cells.LSTMState(jnp.asarray(h0), jnp.asarray(c0)), jnp.asarray(x)
    )
    np.testing.assert_allclose(carry.c, c1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry.h, h1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, carry.h)


def test_gru_step_from_pytorch_layout_by_hand():
    w = torch_style_weights(3, seed=2)
    rng = np.random.default_rng(3)
    x, h0 = (rng.standard_normal(s).astype(np.float32) for s in [(B, D), (B, H)])

    gi = x @ w["weight_ih"].T + w["bias_ih"]  # rows r, z, n
    gh = h0 @ w["weight_hh"].T + w["bias_hh"]
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
    n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
    h1 = (1 - z) * n + z * h0

    h, out = cells.step("gru", to_lstmlab("gru", w), jnp.asarray(h0), jnp.asarray(x))
    np.testing.assert_allclose(h, h1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, h)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_step_from_pytorch_layout_by_hand(activation):
    w = torch_style_weights(1, seed=4)
    rng = np.random.default_rng(5)
    x, h0 = (rng.standard_normal(s).astype(np.float32) for s in [(B, D), (B, H)])
    a = x @ w["weight_ih"].T + w["bias_ih"] + h0 @ w["weight_hh"].T + w["bias_hh"]
    h1 = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
    h, _ = cells.step("rnn", to_lstmlab("rnn", w), jnp.asarray(h0), jnp.asarray(x), activation=activation)
    np.testing.assert_allclose(h, h1, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# Cross-check against PyTorch itself (optional dependency; reported as a skip when absent)
# ----------------------------------------------------------------------------------------------------


def torch_weights(module, suffix=""):
    return {
        k: getattr(module, f"{k}_l0{suffix}").detach().numpy() for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn-tanh", "rnn-relu"])
def test_sequence_matches_torch(name):
    torch = pytest.importorskip(
        "torch",
        reason="optional cross-check; the torch-free layout tests "
        "above always run (pip install torch==2.13.0 to run it)",
    )
    torch.manual_seed(0)
    T = 5
    cell, _, activation = name.partition("-")
    module = {
        "lstm": lambda: torch.nn.LSTM(D, H),
        "gru": lambda: torch.nn.GRU(D, H),
        "rnn": lambda: torch.nn.RNN(D, H, nonlinearity=activation),
    }[cell]()
    xs = torch.randn(T, B, D)
    h0 = torch.randn(1, B, H)
    c0 = torch.randn(1, B, H)
    with torch.no_grad():
        if cell == "lstm":
            ys, (hT, cT) = module(xs, (h0, c0))
            carry = cells.LSTMState(jnp.asarray(h0[0].numpy()), jnp.asarray(c0[0].numpy()))
        else:
            ys, hT = module(xs, h0)
            carry = jnp.asarray(h0[0].numpy())
    opts = {"activation": activation} if cell == "rnn" else {}
    final, hs = cells.scan(cell, to_lstmlab(cell, torch_weights(module)), jnp.asarray(xs.numpy()), carry, **opts)
    np.testing.assert_allclose(hs, ys.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final.h if cell == "lstm" else final, hT[0].numpy(), rtol=1e-5, atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(final.c, cT[0].numpy(), rtol=1e-5, atol=1e-5)


def test_padded_bidirectional_lstm_matches_torch_packed_sequence():
    """torch's packed bidirectional LSTM reads each sequence backwards from its own last step, which is
    what ``seq_lengths`` with ``reverse=True`` promises."""
    torch = pytest.importorskip(
        "torch", reason="optional cross-check; test_cells_scan.py pins the padded semantics without torch"
    )
    torch.manual_seed(1)
    T, lengths = 5, [5, 3]
    module = torch.nn.LSTM(D, H, bidirectional=True)
    xs = torch.randn(T, B, D)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xs, torch.tensor(lengths), enforce_sorted=False)
    with torch.no_grad():
        out, (hT, cT) = module(packed)
    ys, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)  # (T, B, 2H), zero padded

    x = jnp.asarray(xs.numpy())
    seq_lengths = jnp.array(lengths)
    fwd_final, fwd = cells.scan("lstm", to_lstmlab("lstm", torch_weights(module)), x, seq_lengths=seq_lengths)
    bwd_final, bwd = cells.scan(
        "lstm", to_lstmlab("lstm", torch_weights(module, "_reverse")), x, seq_lengths=seq_lengths, reverse=True
    )
    np.testing.assert_allclose(fwd, ys[..., :H].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bwd, ys[..., H:].numpy(), rtol=1e-5, atol=1e-5)
    for direction, final in enumerate([fwd_final, bwd_final]):
        np.testing.assert_allclose(final.h, hT[direction].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(final.c, cT[direction].numpy(), rtol=1e-5, atol=1e-5)
