"""Recurrent weights from and to PyTorch, Keras 3 and Flax, and ``.npz`` files of parameters.

Every importer returns a :class:`Ported`: the cell name and options, and the parameters of a
:class:`~lstmlab.nn.RecurrentStack` as nested dicts ``{"layer0": {"fwd": cell_params, "bwd": ...}}``,
where each ``cell_params`` is the plain dict :func:`lstmlab.cells.scan` takes (``w_i`` (D, G*H),
``w_h`` (H, G*H), ``b`` (G*H,) or ``b_i``/``b_h`` for GRU; float32 NumPy arrays). ``bwd`` exists only
for bidirectional stacks. The mapping rules (transposes, biases, gate order) are in ``docs/interop.md``::

    ported = from_torch(torch.nn.LSTM(8, 32, num_layers=2, bidirectional=True))
    stack = ported.stack()                          # a RecurrentStack holding these weights
    hs = cells.scan(ported.cell, ported.layer(0), xs, **ported.options)[1]
    to_torch(stack_params(stack), torch_module)     # and back

PyTorch and Keras are optional: they are imported inside the functions that need them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DIRECTIONS = ("fwd", "bwd")
_META_KEY = "__lstmlab_meta__"
Params = dict[str, dict[str, dict[str, np.ndarray]]]  # {"layer0": {"fwd": {"w_i": ...}}}


def _require(module: str, caller: str, display: str, install: str):
    """Import the optional ``module``; ImportError in one line saying how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{caller} needs {display}: pip install {install}") from None


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


@dataclass
class Ported:
    """Weights of a recurrent stack in lstmlab's layout.

    Attributes:
      cell: ``lstm``, ``gru``, ``rnn``, ``slstm``, ``mlstm``, ``mingru`` or ``minlstm``. options: the cell's
        options (``activation`` for rnn, ``reset_after`` for a Keras reset-before GRU, ``num_heads``, ...).
      params: ``{"layer<k>": {"fwd": cell_params, "bwd": cell_params}}``; ``bwd`` only when
        ``bidirectional``.
      time_major: False when the source read (B, T, D) batches (torch ``batch_first``, Keras).
    """

    cell: str
    params: Params
    options: dict[str, Any] = field(default_factory=dict)
    bidirectional: bool = False
    time_major: bool = True

    @property
    def num_layers(self) -> int:
        return len(self.params)

    @property
    def input_size(self) -> int:
        """D, the first layer's input size."""
        return int(self.layer(0)["w_i"].shape[0])

    @property
    def hidden_size(self) -> int:
        """H, each direction's hidden size."""
        from lstmlab import cells

        return cells.sizes(self.cell, self.layer(0), **self.options)[1]

    def layer(self, index: int, direction: str = "fwd") -> dict[str, np.ndarray]:
        """The :func:`lstmlab.cells.scan` params dict of layer ``index`` in ``direction`` (fwd/bwd)."""
        return self.params[f"layer{index}"][direction]

    def stack_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that build a matching :class:`~lstmlab.nn.RecurrentStack` (with ``rngs``)."""
        return {
            "cell": self.cell,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "time_major": self.time_major,
            **self.options,
        }

    def stack(self, *, seed: int = 0, **kwargs: Any):
        """A new :class:`~lstmlab.nn.RecurrentStack` holding these weights (``kwargs``: its other
        options, e.g. ``dropout``, ``impl``)."""
        from flax import nnx

        from lstmlab.nn import RecurrentStack

        stack = RecurrentStack(**self.stack_kwargs(), rngs=nnx.Rngs(seed), **kwargs)
        return load_into(stack, self.params)

    def save(self, path: str | Path) -> None:
        """Write the parameters and the cell name/options to the ``.npz`` file ``path``."""
        meta = {
            "cell": self.cell,
            "options": self.options,
            "bidirectional": self.bidirectional,
            "time_major": self.time_major,
        }
        save_params(path, self.params, meta=meta)

    @classmethod
    def load(cls, path: str | Path) -> Ported:
        """Read a file written by :meth:`save`."""
        params, meta = _read_npz(path)
        if meta is None:
            raise ValueError(f"{path} has no cell name (written by save_params, not Ported.save); use load_params")
        return cls(
            cell=meta["cell"],
            params=params,
            options=meta["options"],
            bidirectional=meta["bidirectional"],
            time_major=meta["time_major"],
        )


def _check_stack_params(params: Params, source: str) -> tuple[int, bool]:
    """(num_layers, bidirectional) of nested stack params; ValueError naming a malformed key."""
    layers = sorted(params, key=lambda k: int(k[5:]) if k.startswith("layer") and k[5:].isdigit() else -1)
    for index, key in enumerate(layers):
        if key != f"layer{index}":
            raise ValueError(f"{source}: expected keys layer0..layer{len(layers) - 1}; got {key!r}")
    directions = {tuple(sorted(params[k])) for k in layers}
    if directions not in ({("fwd",)}, {("bwd", "fwd")}):
        raise ValueError(f"{source}: each layer needs 'fwd' (and 'bwd' when bidirectional); got {sorted(directions)}")
    return len(layers), directions == {("bwd", "fwd")}


# -- lstmlab stacks -------------------------------------------------------------------------------


def _directions(stack) -> list[list[Any]]:
    """Per layer, the Recurrent modules of a RecurrentStack: [fwd] or [fwd, bwd]."""
    return [[layer.forward, layer.backward] if stack.bidirectional else [layer] for layer in stack.layers]


def stack_params(stack) -> Params:
    """The parameters of a :class:`~lstmlab.nn.RecurrentStack` as nested dicts of NumPy arrays."""
    return {
        f"layer{k}": {d: {n: np.asarray(v) for n, v in rec.cell_params().items()} for d, rec in zip(DIRECTIONS, recs)}
        for k, recs in enumerate(_directions(stack))
    }


def load_into(stack, params: Params | Ported):
    """Copy ``params`` (nested stack params or a :class:`Ported`) into the
    :class:`~lstmlab.nn.RecurrentStack` ``stack`` in place and return it. ValueError naming the key when
    the layer count, directions, parameter names or shapes differ."""
    import jax.numpy as jnp

    if isinstance(params, Ported):
        params = params.params
    num_layers, bidirectional = _check_stack_params(params, "params")
    recs = _directions(stack)
    if num_layers != len(recs) or bidirectional != stack.bidirectional:
        raise ValueError(
            f"params have {num_layers} layer(s){' bidirectional' * bidirectional}; the stack has "
            f"{len(recs)}{' bidirectional' * stack.bidirectional}"
        )
    expected = {
        f"layer{k}/{d}/{n}": np.shape(v)
        for k, rs in enumerate(recs)
        for d, r in zip(DIRECTIONS, rs)
        for n, v in r.cell_params().items()
    }
    check_compatible(expected, flatten(params))
    for k, rs in enumerate(recs):
        for d, rec in zip(DIRECTIONS, rs):
            for name, value in params[f"layer{k}"][d].items():
                getattr(rec, name)[...] = jnp.asarray(value, getattr(rec, name)[...].dtype)
    return stack


# -- PyTorch --------------------------------------------------------------------------------------


def _torch_kind(torch, module) -> tuple[str, dict[str, Any]]:
    if isinstance(module, torch.nn.LSTM):
        if getattr(module, "proj_size", 0):
            raise ValueError(f"torch LSTM proj_size={module.proj_size} has no lstmlab counterpart")
        return "lstm", {}
    if isinstance(module, torch.nn.GRU):
        return "gru", {}
    if isinstance(module, torch.nn.RNN):
        return "rnn", {"activation": module.nonlinearity}
    raise TypeError(f"expected torch.nn.LSTM, GRU or RNN; got {type(module).__name__}")


def _torch_names(num_layers: int, bidirectional: bool):
    for k in range(num_layers):
        for d, suffix in zip(DIRECTIONS[: 1 + bidirectional], ("", "_reverse")):
            yield k, d, suffix


def from_torch(module) -> Ported:
    """Weights of a ``torch.nn.LSTM``, ``GRU`` or ``RNN`` (any ``num_layers``, ``bidirectional``,
    ``batch_first``, ``nonlinearity``) in lstmlab's layout.

    Transposes ``weight_ih`` (G*H, D) and ``weight_hh`` (G*H, H) to ``w_i`` (D, G*H) and ``w_h``
    (H, G*H); LSTM and RNN get ``b = bias_ih + bias_hh``, GRU keeps ``b_i = bias_ih`` and
    ``b_h = bias_hh``. Gate order is the same (i, f, g, o and r, z, n). ``bias=False`` gives zero biases.
    """
    torch = _require("torch", "from_torch", "PyTorch", "torch==2.13.0")
    cell, options = _torch_kind(torch, module)
    H, G = module.hidden_size, {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    params: Params = {}
    for k, d, suffix in _torch_names(module.num_layers, module.bidirectional):

        def get(name: str) -> np.ndarray:
            if not module.bias and name.startswith("bias"):
                return np.zeros((G * H,), np.float32)
            return _f32(getattr(module, f"{name}_l{k}{suffix}").detach().cpu().float().numpy())

        p = {"w_i": get("weight_ih").T.copy(), "w_h": get("weight_hh").T.copy()}
        if cell == "gru":
            p.update(b_i=get("bias_ih"), b_h=get("bias_hh"))
        else:
            p["b"] = get("bias_ih") + get("bias_hh")
        params.setdefault(f"layer{k}", {})[d] = p
    return Ported(cell, params, options, bool(module.bidirectional), time_major=not module.batch_first)


def to_torch(params: Params | Ported, module) -> None:
    """Copy lstmlab stack params (nested dicts, a :class:`Ported`, or :func:`stack_params` of a stack)
    into the existing torch ``module`` (LSTM, GRU or RNN of the same sizes) in place.

    LSTM and RNN: lstmlab has one bias, so ``bias_ih`` gets ``b`` and ``bias_hh`` gets zeros (the sum,
    which is all the layer computes with, is exact). GRU: ``b_i``/``b_h`` go to ``bias_ih``/``bias_hh``.
    ValueError if the module has ``bias=False`` and a bias is not zero, or for peephole weights (torch
    has none); one line naming the parameter on a shape mismatch.
    """
    torch = _require("torch", "to_torch", "PyTorch", "torch==2.13.0")
    if isinstance(params, Ported):
        params = params.params
    cell, _ = _torch_kind(torch, module)
    num_layers, bidirectional = _check_stack_params(params, "params")
    if (num_layers, bidirectional) != (module.num_layers, bool(module.bidirectional)):
        raise ValueError(
            f"params have {num_layers} layer(s), bidirectional={bidirectional}; the torch module "
            f"has {module.num_layers}, bidirectional={bool(module.bidirectional)}"
        )
    for k, d, suffix in _torch_names(module.num_layers, module.bidirectional):
        p = params[f"layer{k}"][d]
        extra = sorted(set(p) - {"w_i", "w_h", "b", "b_i", "b_h"})
        if extra:
            raise ValueError(
                f"layer{k}/{d}/{extra[0]} has no torch counterpart (torch.nn.{type(module).__name__} has no peepholes)"
            )
        if cell == "gru":
            biases = {"bias_ih": p["b_i"], "bias_hh": p["b_h"]}
        else:
            biases = {"bias_ih": p["b"], "bias_hh": np.zeros_like(np.asarray(p["b"]))}
        values = {"weight_ih": np.asarray(p["w_i"]).T, "weight_hh": np.asarray(p["w_h"]).T, **biases}
        with torch.no_grad():
            for name, value in values.items():
                if not module.bias and name.startswith("bias"):
                    if np.any(np.asarray(value) != 0):
                        raise ValueError(f"layer{k}/{d}: the torch module has bias=False but the bias is not zero")
                    continue
                target = getattr(module, f"{name}_l{k}{suffix}")
                if tuple(target.shape) != tuple(np.shape(value)):
                    raise ValueError(
                        f"{name}_l{k}{suffix} has shape {tuple(target.shape)}; layer{k}/{d} gives "
                        f"{tuple(np.shape(value))}"
                    )
                target.copy_(torch.tensor(np.array(value, np.float32), dtype=target.dtype))


# -- Keras 3 ----------------------------------------------------------------------------------------

_KERAS_GRU_TO_OURS = (1, 0, 2)  # keras column blocks z, r, h -> lstmlab r, z, n


def from_xlstm_slstm(cell) -> Ported:
    """Weights of an ``xlstm`` package ``sLSTMCell`` (``backend="vanilla"``, ``input_shape="BSGNH"``) as
    lstmlab's ``slstm`` with its ``num_heads``.

    That cell takes inputs already projected to the gates, (B, T, 4H) as [i, f, z, o] x heads x units,
    which is lstmlab's ``w_i`` order: ``w_i`` is the (4H, 4H) identity. Its recurrent kernel (heads,
    4d, d) transposed per head is ``w_h`` (heads, d, 4d); its bias, in the same gate-head-unit order, is
    ``b``. The package's sLSTM uses a sigmoid forget gate.
    """
    _require("torch", "from_xlstm_slstm", "PyTorch", "torch==2.13.0")
    config = getattr(cell, "config", None)
    if type(cell).__name__ != "sLSTMCell_vanilla" or config is None:
        raise ValueError(f"from_xlstm_slstm takes an xlstm sLSTMCell with backend='vanilla'; got {type(cell).__name__}")
    if config.input_shape != "BSGNH" or config.function != "slstm":
        raise ValueError(
            f"from_xlstm_slstm takes an sLSTM cell with input_shape='BSGNH'; got function={config.function!r}, "
            f"input_shape={config.input_shape!r}"
        )
    R = _f32(cell._recurrent_kernel.detach().cpu().float().numpy())  # (NH, 4d, d)
    H = config.hidden_size
    p = {
        "w_i": np.eye(4 * H, dtype=np.float32),
        "w_h": R.transpose(0, 2, 1).copy(),
        "b": _f32(cell._bias.detach().cpu().float().numpy()),
    }
    return Ported("slstm", {"layer0": {"fwd": p}}, {"num_heads": int(config.num_heads)}, False, time_major=False)


def from_xlstm_mlstm(cell) -> Ported:
    """Weights of an ``xlstm`` package ``mLSTMCell`` as lstmlab's ``mlstm`` with its ``num_heads`` and
    ``norm`` (the package's cell ends in a per-head layer norm and has no output gate).

    That cell reads queries, keys and values already projected, each (B, T, E), and computes its input
    and forget gates from their concatenation; lstmlab's cell reads that concatenation, x = [q, k, v]
    (B, T, 3E), with ``w_i`` (3E, 4E + 2 heads): identity blocks for q, k and v, a zero block and bias 30
    for the output gate (sigmoid(30) is 1 in float32), and the package's gate weights transposed for i
    and f. ``norm`` is the package norm's scale (1 + its weight: the package stores the difference from 1).
    """
    _require("torch", "from_xlstm_mlstm", "PyTorch", "torch==2.13.0")
    config = getattr(cell, "config", None)
    if type(cell).__name__ != "mLSTMCell" or config is None:
        raise ValueError(f"from_xlstm_mlstm takes an xlstm mLSTMCell; got {type(cell).__name__}")
    norm = cell.outnorm
    if norm.bias is not None or norm.weight is None or norm.eps != 1e-5:
        raise ValueError(
            f"from_xlstm_mlstm takes an mLSTMCell whose norm has a weight, no bias and eps 1e-5; got "
            f"weight={norm.weight is not None}, bias={norm.bias is not None}, eps={norm.eps}"
        )

    def numpy(t):
        return _f32(t.detach().cpu().float().numpy())

    E, NH = int(config.embedding_dim), int(config.num_heads)
    w_i = np.zeros((3 * E, 4 * E + 2 * NH), np.float32)
    w_i[:, : 3 * E] = np.eye(3 * E)
    w_i[:, 4 * E : 4 * E + NH] = numpy(cell.igate.weight).T
    w_i[:, 4 * E + NH :] = numpy(cell.fgate.weight).T
    b = np.zeros(4 * E + 2 * NH, np.float32)
    b[3 * E : 4 * E] = 30.0
    b[4 * E : 4 * E + NH], b[4 * E + NH :] = numpy(cell.igate.bias), numpy(cell.fgate.bias)
    scale = numpy(norm.weight_proxy)
    p = {"w_i": w_i, "b": b, "norm": scale}
    return Ported("mlstm", {"layer0": {"fwd": p}}, {"num_heads": NH, "norm": True}, False, time_major=False)


_MINGRU_PYTORCH_ORDER = {
    "minGRU": ("mingru", "to_hidden_and_gate", 2),
    "minLSTM": ("minlstm", "to_hidden_and_f_i_gate", 3),
}


def from_mingru_pytorch(module) -> Ported:
    """Weights of a ``minGRU`` or ``minLSTM`` layer of the ``mingru-pytorch`` package (batch-first) as
    lstmlab's ``mingru`` / ``minlstm``.

    Its bias-free projection (``to_hidden_and_gate``: rows [h~, z]; ``to_hidden_and_f_i_gate``: rows
    [h~, f, i]) becomes ``w_i`` (D, G*H) transposed, with the candidate block moved last ([z, h~] and
    [f, i, h~]), and ``b`` zero. A layer with an output projection (``expansion_factor != 1`` or
    ``proj_out=True``) is refused: that projection is a separate linear layer, not part of the cell.
    """
    _require("torch", "from_mingru_pytorch", "PyTorch", "torch==2.13.0")
    kind = type(module).__name__
    if kind not in _MINGRU_PYTORCH_ORDER:
        raise ValueError(f"from_mingru_pytorch takes a minGRU or minLSTM module; got {kind}")
    cell, name, G = _MINGRU_PYTORCH_ORDER[kind]
    if type(module.to_out).__name__ != "Identity":
        raise ValueError(f"{kind} has an output projection (to_out); build it with expansion_factor=1, proj_out=False")
    w = _f32(getattr(module, name).weight.detach().cpu().float().numpy()).T  # (D, G*H): [h~, gates...]
    H = w.shape[1] // G
    w_i = np.concatenate([w[:, H:], w[:, :H]], axis=1)
    params: Params = {"layer0": {"fwd": {"w_i": w_i, "b": np.zeros((G * H,), np.float32)}}}
    return Ported(cell, params, {}, False, time_major=False)


def _blocks(a: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Reorder the gate blocks of the last axis of ``a`` (..., G*H)."""
    parts = np.split(a, len(order), axis=-1)
    return np.concatenate([parts[i] for i in order], axis=-1)


def _keras_activation(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def _from_keras_rnn(
    keras, layer, where: str, backward: bool = False
) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(cell, options, params) of one Keras LSTM, GRU or SimpleRNN layer; ``backward``: the backward
    layer of a Bidirectional wrapper (which flips its outputs back into time order, as lstmlab's
    backward direction gives them)."""
    cell = layer.cell
    if getattr(layer, "go_backwards", False) and not backward:
        raise ValueError(f"{where}: go_backwards=True outside a Bidirectional wrapper is not supported")
    weights = [_f32(keras.ops.convert_to_numpy(w)) for w in (cell.kernel, cell.recurrent_kernel)]
    bias = _f32(keras.ops.convert_to_numpy(cell.bias)) if cell.use_bias else None
    act = _keras_activation(cell.activation)
    if isinstance(layer, keras.layers.SimpleRNN):
        names = {"tanh": "tanh", "relu": "relu", "linear": "identity"}
        if act not in names:
            raise ValueError(f"{where}: SimpleRNN activation={act!r}; lstmlab's rnn has tanh, relu, linear")
        H = weights[1].shape[0]
        return (
            "rnn",
            {"activation": names[act]},
            {"w_i": weights[0], "w_h": weights[1], "b": bias if bias is not None else np.zeros(H, np.float32)},
        )
    rec_act = _keras_activation(cell.recurrent_activation)
    if (act, rec_act) != ("tanh", "sigmoid"):
        raise ValueError(
            f"{where}: activation={act!r}, recurrent_activation={rec_act!r}; lstmlab's cells use tanh and sigmoid"
        )
    H = weights[1].shape[0]
    if isinstance(layer, keras.layers.LSTM):  # keras gates i, f, c, o = lstmlab i, f, g, o
        return (
            "lstm",
            {},
            {"w_i": weights[0], "w_h": weights[1], "b": bias if bias is not None else np.zeros(4 * H, np.float32)},
        )
    if isinstance(layer, keras.layers.GRU):
        w_i, w_h = (_blocks(w, _KERAS_GRU_TO_OURS) for w in weights)
        zeros = np.zeros(3 * H, np.float32)
        if cell.reset_after:  # bias (2, 3H): input bias, recurrent bias
            b_i, b_h = (bias[0], bias[1]) if bias is not None else (zeros, zeros)
            options = {}
        else:  # bias (3H,): one bias, added outside r * (...)
            b_i, b_h = (bias if bias is not None else zeros), zeros
            options = {"reset_after": False}
        return (
            "gru",
            options,
            {"w_i": w_i, "w_h": w_h, "b_i": _blocks(b_i, _KERAS_GRU_TO_OURS), "b_h": _blocks(b_h, _KERAS_GRU_TO_OURS)},
        )
    raise TypeError(
        f"{where}: expected a Keras LSTM, GRU, SimpleRNN or Bidirectional layer; got {type(layer).__name__}"
    )


def from_keras(layers) -> Ported:
    """Weights of Keras 3 recurrent layers in lstmlab's layout.

    ``layers``: one ``keras.layers.LSTM``, ``GRU`` (``reset_after`` True or False) or ``SimpleRNN``, a
    ``Bidirectional`` wrapper of one (``merge_mode="concat"``), or a list of them or a ``Sequential``
    (its recurrent layers, in order, become the stack's layers; other layers such as ``Dense`` heads
    and ``Dropout`` are not ported). All recurrent layers must share the cell, its options and H.

    Keras kernels are already (D, G*H); LSTM gate order i, f, c, o is lstmlab's i, f, g, o; GRU
    blocks z, r, h are reordered to r, z, n. ``reset_after=False`` gives ``options={"reset_after":
    False}`` (its single bias becomes ``b_i``, ``b_h`` is zero). Batch-major: ``time_major=False``.
    """
    keras = _require("keras", "from_keras", "Keras 3", "keras")
    if isinstance(layers, keras.Model):
        layers = [layer for layer in layers.layers if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))]
    elif not isinstance(layers, (list, tuple)):
        layers = [layers]
    if not layers:
        raise ValueError("from_keras: no LSTM, GRU, SimpleRNN or Bidirectional layer given")
    stack = []
    for k, layer in enumerate(layers):
        where = f"layer {k} ({layer.name})"
        if isinstance(layer, keras.layers.Bidirectional):
            if layer.merge_mode != "concat":
                raise ValueError(f"{where}: Bidirectional merge_mode={layer.merge_mode!r}; lstmlab concatenates")
            stack.append(
                [
                    _from_keras_rnn(keras, layer.forward_layer, where),
                    _from_keras_rnn(keras, layer.backward_layer, where, backward=True),
                ]
            )
        else:
            stack.append([_from_keras_rnn(keras, layer, where)])
    return _batch_major_stack("from_keras", stack)


def _batch_major_stack(source: str, stack: list[list[tuple[str, dict[str, Any], dict[str, np.ndarray]]]]) -> Ported:
    """The :class:`Ported` of a stack given as, per layer, one ``(cell, options, params)`` per direction;
    every layer must have the same cell, options and hidden size, and all or none be bidirectional."""
    params: Params = {}
    kinds, bidirectional = set(), set()
    for k, parts in enumerate(stack):
        bidirectional.add(len(parts) == 2)
        for (cell, options, p), d in zip(parts, DIRECTIONS):
            kinds.add((cell, json.dumps(options, sort_keys=True), p["w_h"].shape[0]))
            params.setdefault(f"layer{k}", {})[d] = p
    if len(kinds) > 1 or len(bidirectional) > 1:
        raise ValueError(
            f"{source}: a stack needs one cell, its options and hidden size, and all layers "
            f"bidirectional or none; got {sorted(kinds)}"
        )
    cell, options, _ = kinds.pop()
    return Ported(cell, params, json.loads(options), bidirectional.pop(), time_major=False)


# -- Flax -------------------------------------------------------------------------------------------


def _flax_cell(cell) -> tuple[str, dict[str, np.ndarray]]:
    """(cell name, params) of one Flax cell: an nnx LSTMCell, OptimizedLSTMCell, GRUCell or SimpleCell,
    or the params dict of a linen LSTMCell, OptimizedLSTMCell or GRUCell (``{"params": {...}}``,
    the inner dict, or an ``nn.RNN``'s ``{"cell": {...}}``)."""
    from flax import nnx

    if isinstance(cell, nnx.Module):
        kind = type(cell).__name__
        for attr, want in (("gate_fn", "sigmoid"), ("activation_fn", "tanh")):
            fn = getattr(cell, attr, None)
            if (
                fn is not None
                and getattr(fn, "__name__", want) != want
                and not (kind == "SimpleCell" and attr == "activation_fn")
            ):
                raise ValueError(f"flax {kind} {attr}={getattr(fn, '__name__', fn)}; lstmlab uses {want}")

        def val(v):
            return _f32(v[...])

        if kind == "LSTMCell":
            gates = [("ii", "hi"), ("if_", "hf"), ("ig", "hg"), ("io", "ho")]
            return "lstm", {
                "w_i": np.concatenate([val(getattr(cell, i).kernel) for i, _ in gates], axis=1),
                "w_h": np.concatenate([val(getattr(cell, h).kernel) for _, h in gates], axis=1),
                "b": np.concatenate([val(getattr(cell, h).bias) for _, h in gates]),
            }
        if kind == "OptimizedLSTMCell":
            return "lstm", {
                "w_i": val(cell.dense_i.kernel),
                "w_h": val(cell.dense_h.kernel),
                "b": val(cell.dense_h.bias),
            }
        if kind == "GRUCell":
            H = cell.dense_h.kernel[...].shape[0]
            return "gru", {
                "w_i": val(cell.dense_i.kernel),
                "w_h": val(cell.dense_h.kernel),
                "b_i": val(cell.dense_i.bias),
                "b_h": np.zeros(3 * H, np.float32),
            }
        if kind == "SimpleCell":
            if getattr(cell, "residual", False):
                raise ValueError("flax SimpleCell residual=True has no lstmlab counterpart")
            name = getattr(cell.activation_fn, "__name__", "")
            if name not in ("tanh", "relu"):
                raise ValueError(
                    f"flax SimpleCell activation_fn={name or cell.activation_fn}; lstmlab's rnn has tanh and relu"
                )
            return "rnn", {
                "w_i": val(cell.dense_i.kernel),
                "w_h": val(cell.dense_h.kernel),
                "b": val(cell.dense_i.bias),
                "activation": name,
            }
        raise TypeError(f"expected a flax LSTMCell, OptimizedLSTMCell, GRUCell or SimpleCell; got {kind}")
    if not isinstance(cell, Mapping):
        raise TypeError(f"expected a flax nnx cell or a linen params dict; got {type(cell).__name__}")
    p = cell
    while set(p) <= {"params", "cell"} and len(p) == 1:
        p = p[next(iter(p))]
    if {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"} <= set(p):
        gates = [("ii", "hi"), ("if", "hf"), ("ig", "hg"), ("io", "ho")]
        return "lstm", {
            "w_i": np.concatenate([_f32(p[i]["kernel"]) for i, _ in gates], axis=1),
            "w_h": np.concatenate([_f32(p[h]["kernel"]) for _, h in gates], axis=1),
            "b": np.concatenate([_f32(p[h]["bias"]) for _, h in gates]),
        }
    if {"ir", "iz", "in", "hr", "hz", "hn"} <= set(p):
        H = _f32(p["hn"]["kernel"]).shape[0]
        zeros = np.zeros(H, np.float32)
        return "gru", {
            "w_i": np.concatenate([_f32(p[g]["kernel"]) for g in ("ir", "iz", "in")], axis=1),
            "w_h": np.concatenate([_f32(p[g]["kernel"]) for g in ("hr", "hz", "hn")], axis=1),
            "b_i": np.concatenate([_f32(p[g]["bias"]) for g in ("ir", "iz", "in")]),
            "b_h": np.concatenate([zeros, zeros, _f32(p["hn"]["bias"])]),
        }
    raise ValueError(f"not the params of a linen LSTMCell, OptimizedLSTMCell or GRUCell: keys {sorted(p)}")


def from_flax(cells) -> Ported:
    """Weights of Flax recurrent cells in lstmlab's layout.

    ``cells``: one cell (an nnx ``LSTMCell``/``OptimizedLSTMCell``/``GRUCell``/``SimpleCell`` module,
    or the params of a linen ``LSTMCell``/``OptimizedLSTMCell``/``GRUCell``), or a list of them, one
    per layer, where an item may be a ``(forward, backward)`` pair for a bidirectional layer. Flax
    kernels are already (D, H) per gate: they are concatenated in the order i, f, g, o (LSTM) or
    r, z, n (GRU). The LSTM bias lives on the recurrent Dense layers; GRU biases differ by API (linen:
    input biases for r, z, n and a recurrent bias for n only; nnx: input biases only), the missing
    ones are zero. Flax carries are ``(c, h)``, lstmlab's ``LSTMState(h, c)``. Flax cells with
    ``gate_fn``/``activation_fn`` other than sigmoid/tanh are refused (checked on nnx modules only:
    linen params do not record them).
    """
    items = list(cells) if isinstance(cells, (list, tuple)) else [cells]
    stack = []
    for item in items:
        parts = []
        for c in item if isinstance(item, tuple) else (item,):
            name, p = _flax_cell(c)
            parts.append((name, {"activation": p.pop("activation")} if name == "rnn" else {}, p))
        stack.append(parts)
    return _batch_major_stack("from_flax", stack)


# -- files -------------------------------------------------------------------------------------------


def flatten(params: Any, sep: str = "/") -> dict[str, np.ndarray]:
    """Nested dicts (or any pytree, e.g. an nnx State) as ``{"layer0/fwd/w_i": array}``: tree path
    names joined by ``sep``."""
    import jax

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        out[jax.tree_util.keystr(path, simple=True, separator=sep)] = np.asarray(leaf)
    return out


def unflatten(flat: Mapping[str, np.ndarray], sep: str = "/") -> dict[str, Any]:
    """``{"a/b/c": x}`` -> ``{"a": {"b": {"c": x}}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(sep)
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return out


def save_params(path: str | Path, params: Any, meta: dict[str, Any] | None = None) -> None:
    """Write ``params`` (nested dicts of arrays, a :class:`Ported`'s ``params``, or any pytree) to the
    ``.npz`` file ``path`` with flat keys like ``layer0/fwd/w_i``; ``meta``: JSON-able extras."""
    flat = flatten(params.params if isinstance(params, Ported) else params)
    if meta is not None:
        flat[_META_KEY] = np.array(json.dumps(meta))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file object: numpy would otherwise append ".npz"
        np.savez(fh, **flat)


def _read_npz(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file (expected an .npz file of parameters)")
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not an .npz file of parameters ({type(err).__name__}: {err})") from None
    meta = flat.pop(_META_KEY, None)
    return unflatten(flat), (json.loads(str(meta)) if meta is not None else None)


def load_params(path: str | Path) -> dict[str, Any]:
    """Nested dicts of NumPy arrays from an ``.npz`` file written by :func:`save_params`."""
    return _read_npz(path)[0]


def check_compatible(expected: Any, loaded: Any, source: str = "loaded params") -> None:
    """ValueError (one line, naming the key) unless ``loaded`` has exactly the keys of ``expected`` with
    the same shapes. Both are pytrees (nested dicts) of arrays, or flat ``{key: array or shape}`` dicts."""

    def shapes(tree):
        if isinstance(tree, Mapping) and all(isinstance(v, tuple) for v in tree.values()):
            return {k: tuple(v) for k, v in tree.items()}
        return {k: tuple(np.shape(v)) for k, v in flatten(tree).items()}

    want, got = shapes(expected), shapes(loaded)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing:
        raise ValueError(f"{source} has no {missing[0]!r} (expected shape {want[missing[0]]})")
    if extra:
        raise ValueError(f"{source} has an unexpected {extra[0]!r} of shape {got[extra[0]]}")
    for key, shape in want.items():
        if got[key] != shape:
            raise ValueError(f"{source}: {key!r} has shape {got[key]}, expected {shape}")


_STACK_NAMES = {"fwd": "forward", "bwd": "backward"}


def _stack_key_to_model(key: str, template_keys: set[str]) -> str | None:
    """``layer0/fwd/w_i`` -> the template's key for it (``rnn.layers.0.forward.w_i.value``,
    ``rnn.layers.0.w_i.value`` or the same without ``rnn.``), or None."""
    parts = key.split("/")
    if len(parts) != 3 or not parts[0].startswith("layer") or parts[1] not in _STACK_NAMES:
        return None
    k, d, name = parts[0][5:], parts[1], parts[2]
    for prefix in ("rnn.", ""):
        for middle in (f".{_STACK_NAMES[d]}", "" if d == "fwd" else None):
            if middle is None:
                continue
            for suffix in (".value", ""):
                candidate = f"{prefix}layers.{k}{middle}.{name}{suffix}"
                if candidate in template_keys:
                    return candidate
    return None


def load_matching(template: Any, path: str | Path) -> Any:
    """Parameters in the structure of ``template`` (a built model's params, e.g. ``nnx.state(model,
    nnx.Param)`` or the ``params`` of :func:`lstmlab.train.loop.initial_state`) read from ``path``:

    - a run directory (or its ``checkpoints`` directory): the ``params`` of its newest checkpoint
      that reads back whole; every key must match;
    - an ``.npz`` file from :func:`save_params`: either of the model's own params (keys are its tree
      paths), or stack params (``layer0/fwd/w_i``, e.g. a :func:`from_torch` result), which replace the
      model's recurrent weights and leave the rest (embedding, head) as in ``template``.

    Shapes are checked: ValueError in one line naming the file, the key, its shape and the expected one.
    """
    import jax

    from lstmlab.io import checkpoint as ckpt
    from lstmlab.io.rundir import RunDir

    path = Path(path)
    expected = ckpt.flatten_shapes(template)
    if path.is_dir():
        directory = RunDir(path).checkpoints if RunDir(path).checkpoints.is_dir() else path
        reader = ckpt.Checkpointer(directory, read_only=True, keep_best=False)
        try:
            step, flat, _, damaged = reader.read_latest_good()
        finally:
            reader.close()
        if step is None:
            reasons = "; ".join(damaged.values())
            raise ValueError(f"{directory}: no readable checkpoint{f' ({reasons})' if reasons else ''}")
        params = {k[len("params.") :]: v for k, v in flat.items() if k.startswith("params.")}
        return ckpt.unflatten(template, params, f"checkpoint {directory / str(step)}")
    flat, _ = _read_npz(path)
    flat = flatten(flat)
    template_keys = set(expected)
    mapped = {}
    for key, value in flat.items():
        target = key.replace("/", ".")
        if target not in template_keys:
            target = _stack_key_to_model(key, template_keys)
        if target is None:
            raise ValueError(f"{path}: {key!r} matches no parameter of this model")
        shape = expected[target][0]
        if tuple(np.shape(value)) != tuple(shape):
            raise ValueError(f"{path}: {key!r} has shape {tuple(np.shape(value))}, the model needs {tuple(shape)}")
        mapped[target] = value
    leaves = []
    for path_, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
        key = ckpt._key(path_)
        leaves.append(np.asarray(mapped[key], expected[key][1]) if key in mapped else leaf)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


__all__ = [
    "DIRECTIONS",
    "Ported",
    "check_compatible",
    "flatten",
    "from_flax",
    "from_keras",
    "from_mingru_pytorch",
    "from_torch",
    "from_xlstm_mlstm",
    "from_xlstm_slstm",
    "load_into",
    "load_matching",
    "load_params",
    "save_params",
    "stack_params",
    "to_torch",
    "unflatten",
]
