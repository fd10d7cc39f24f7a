"""Functional recurrent cells: pure math on dicts of arrays, no Flax, Hydra or I/O.

The contract::

    from lstmlab import cells
    params = cells.init("lstm", key, input_size=D, hidden_size=H)        # dict of arrays
    carry = cells.initial_carry("lstm", batch_size=B, hidden_size=H)     # LSTMState(h, c)
    final_carry, hs = cells.scan("lstm", params, xs)                     # xs (T, B, D) -> hs (T, B, H)

Cells: ``lstm``, ``peephole`` (both with ``variant=``, see :mod:`lstmlab.cells.lstm`), ``gru`` (with
``reset_after=``, :mod:`lstmlab.cells.gru`), ``rnn`` (with ``activation=``, :mod:`lstmlab.cells.rnn`);
xLSTM's ``slstm`` and ``mlstm`` (:mod:`lstmlab.cells.slstm`, :mod:`lstmlab.cells.mlstm`) and
``mingru``, ``minlstm`` (:mod:`lstmlab.cells.minrnn`); Jozefowicz et al.'s ``mut1``, ``mut2``, ``mut3``
(:mod:`lstmlab.cells.mut`); Arjovsky et al.'s unitary ``urnn`` (:mod:`lstmlab.cells.urnn`). Where a cell
computes a sequence in several ways, its option ``form`` (``sequential`` | ``parallel`` | ``chunkwise``)
chooses.
Initialisation options are documented in :mod:`lstmlab.cells.init`.

Each cell's equations (init, carry, one forward step and its hand-derived backward) live in its own
module as a :class:`Cell`; :mod:`lstmlab.cells.scan` holds the one time loop that runs them. A new cell
is one such class plus ``cells.register(name, MyCell())``; every function here then accepts ``name``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from lstmlab.cells import gru as _gru
from lstmlab.cells import lstm as _lstm
from lstmlab.cells import minrnn as _minrnn
from lstmlab.cells import mlstm as _mlstm
from lstmlab.cells import mut as _mut
from lstmlab.cells import remat as _remat
from lstmlab.cells import rnn as _rnn
from lstmlab.cells import scan as _scan
from lstmlab.cells import sharding as _sharding
from lstmlab.cells import slstm as _slstm
from lstmlab.cells import urnn as _urnn
from lstmlab.cells.base import Cell
from lstmlab.cells.init import INPUT_INITIALIZERS, InitOptions
from lstmlab.cells.lstm import VARIANTS, FGRState, LSTMState
from lstmlab.cells.rnn import ACTIVATIONS
from lstmlab.cells.scan import batch_where, reverse_padded, time_mask

Array = jax.Array
Carry = Any

IMPLS: tuple[str, ...] = ("fast", "reference", "cudnn")

__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "Cell",
    "batch_where",
    "FGRState",
    "IMPLS",
    "INPUT_INITIALIZERS",
    "InitOptions",
    "LSTMState",
    "VARIANTS",
    "cell_options",
    "check_params",
    "get",
    "has_fast_path",
    "init",
    "initial_carry",
    "num_gates",
    "option_names",
    "param_shapes",
    "register",
    "reverse_padded",
    "scan",
    "scan_gates",
    "scan_states",
    "sizes",
    "step",
    "time_mask",
    "unregister",
]

# ---------------------------------------------------------------------------------------------------
# Registry

_REGISTRY: dict[str, Cell] = {}
_REQUIRED = (
    "num_gates",
    "input_bias",
    "options",
    "check_options",
    "param_shapes",
    "init",
    "initial_carry",
    "output",
    "forward",
    "has_backward",
    "backward_state",
    "backward",
    "grads",
)


def register(name: str, cell: Cell, *, replace: bool = False) -> None:
    """Make ``cell`` (a :class:`Cell`, or any object with its attributes) available as ``name`` to every
    function of this module. Raises ValueError if ``name`` is taken (unless ``replace``) and TypeError
    if ``cell`` lacks one of the attributes."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a cell name must be a non-empty string; got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"cell {name!r} is already registered; pass replace=True to replace it")
    missing = [a for a in _REQUIRED if not hasattr(cell, a)]
    if missing:
        raise TypeError(f"cell {name!r} lacks {', '.join(missing)}; subclass lstmlab.cells.Cell")
    _REGISTRY[name] = cell


def unregister(name: str) -> None:
    """Remove cell ``name`` from the registry."""
    get(name)
    del _REGISTRY[name]


def get(name: str) -> Cell:
    """The registered cell ``name``; ValueError naming the valid names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"cell={name!r} is not a cell; valid: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def __getattr__(attr: str) -> Any:
    if attr == "CELLS":  # the registered names, as of now
        return tuple(_REGISTRY)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


register("lstm", _lstm.CELL)
register("peephole", _lstm.PEEPHOLE)
register("gru", _gru.CELL)
register("rnn", _rnn.CELL)
register("slstm", _slstm.CELL)
register("mlstm", _mlstm.CELL)
register("mingru", _minrnn.MINGRU)
register("minlstm", _minrnn.MINLSTM)
register("mut1", _mut.MUT1)
register("mut2", _mut.MUT2)
register("mut3", _mut.MUT3)
register("urnn", _urnn.CELL)


def option_names(name: str) -> tuple[str, ...]:
    """The names of cell ``name``'s options, e.g. ``("variant",)`` for the LSTM family."""
    return tuple(get(name).options)


def cell_options(name: str, **options: Any) -> dict[str, Any]:
    """Validate the options of cell ``name`` (``variant`` for the LSTM family, ``reset_after`` for
    ``gru``, ``activation`` for ``rnn``) and return all of them with defaults filled in. Raises
    ValueError naming what is valid."""
    cell = get(name)
    valid = list(cell.options)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"cell {name!r} takes no option {unknown[0]!r}; valid: {', '.join(valid) or 'none'}")
    return cell.check_options(**{**cell.options, **options})


def num_gates(name: str) -> int:
    """Blocks of H in ``w_i``/``w_h``: 4 for the LSTM family, 3 for GRU, 1 for RNN."""
    return int(get(name).num_gates)


def has_fast_path(name: str, **options: Any) -> bool:
    """True if cell ``name`` with ``options`` has a hand-written backward (``impl="fast"`` uses it; the
    rest, e.g. variant FGR, falls back to the reference)."""
    return bool(get(name).has_backward(**cell_options(name, **options)))


# ---------------------------------------------------------------------------------------------------
# Parameter shapes


_SYMBOL = re.compile(r"(\d*)H(?:/(\d+))?(?:\+(\d+))?")


def _linear(symbol: str) -> tuple[int, int, int] | None:
    """(a, k, c) of an H symbol ``"aH/k+c"`` (each part optional), None for ``"D"`` or a constant."""
    match = _SYMBOL.fullmatch(symbol)
    return None if match is None else (int(match[1] or 1), int(match[2] or 1), int(match[3] or 0))


def _dim(symbol: str, input_size: int, hidden_size: int) -> tuple[int, str]:
    """A shape symbol as (size, explanation): ``"D"`` the input size; ``"aH/k+c"`` (each part optional:
    ``"H"``, ``"4H"``, ``"H/2"``, ``"4H+8"``) a * H / k + c for the hidden size H; digits a constant."""
    if symbol == "D":
        return input_size, f"input_size={input_size}"
    coefficients = _linear(symbol)
    if coefficients is None:
        return int(symbol), symbol
    a, k, c = coefficients
    size = a * hidden_size // k + c
    if coefficients == (1, 1, 0):
        return size, f"hidden_size={hidden_size}"
    text = symbol.replace("H", "*hidden_size" if a > 1 else "hidden_size")
    return size, f"{text}={size}"


def _solve_hidden(symbol: str, size: int) -> int | None:
    """The hidden size H for which ``symbol`` (an H symbol of :func:`_dim`) is ``size``, or None."""
    coefficients = _linear(symbol)
    if coefficients is None:
        return None
    a, k, c = coefficients
    H, rest = divmod((size - c) * k, a)
    return H if rest == 0 and H > 0 and a * H // k + c == size else None


def param_shapes(name: str, input_size: int, hidden_size: int, **options: Any) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter of cell ``name`` with these sizes and options."""
    spec = get(name).param_shapes(**cell_options(name, **options))
    return {k: tuple(_dim(s, input_size, hidden_size)[0] for s in v) for k, v in spec.items()}


def _sizes_from(cell: Cell, spec: Mapping[str, tuple[str, ...]], params: Mapping[str, Array]) -> tuple[int, int]:
    """(input_size, hidden_size) read off the parameters: H from ``w_h`` (H, G*H) or, for a cell
    without one, from the first H-sized axis of its parameters; D from ``w_i`` (D, G*H), either way
    round."""
    if "w_h" in spec and len(spec["w_h"]) == 2 and spec["w_h"][0] == "H":
        w_h = jnp.shape(params["w_h"])
        k = _dim(spec["w_h"][1], 0, 1)[0]
        if len(w_h) == 2 and w_h[1] == k * w_h[0]:
            H = w_h[0]
        elif len(w_h) == 2 and w_h[0] == k * w_h[1]:
            H = w_h[1]
        else:
            raise ValueError(
                f"params['w_h'] has shape {w_h}; expected (hidden_size, "
                f"{spec['w_h'][1].replace('H', '*hidden_size') if k > 1 else 'hidden_size'})"
            )
    else:
        keys = sorted(spec, key=lambda k: (k != "w_h", k != "w_i"))  # w_h first, then w_i, then the rest
        solved = (_solve_hidden(s, n) for k in keys for s, n in zip(spec[k], jnp.shape(params[k])))
        H = next((h for h in solved if h is not None), None)
        if H is None:
            shapes = ", ".join(f"{k} {tuple(v)}" for k, v in spec.items())
            raise ValueError(f"cannot read the hidden size off params with shapes {shapes}")
    w_i = jnp.shape(params["w_i"])
    width = _dim(spec["w_i"][1], 0, H)[0]
    D = w_i[1] if len(w_i) == 2 and w_i[0] == width and w_i[1] != width else (w_i[0] if w_i else 0)
    return int(D), int(H)


def sizes(name: str, params: Mapping[str, Array], **options: Any) -> tuple[int, int]:
    """(input_size, hidden_size) of cell ``name``'s parameters ``params``."""
    cell = get(name)
    return _sizes_from(cell, cell.param_shapes(**cell_options(name, **options)), params)


def check_params(
    name: str,
    params: Mapping[str, Array],
    *,
    input_size: int | None = None,
    hidden_size: int | None = None,
    **options: Any,
) -> None:
    """ValueError unless ``params`` has exactly cell ``name``'s keys, each of the right shape.

    The message names the key, its shape and the expected one, e.g. ``params['w_i'] has shape (512, 32);
    expected (32, 512) (input_size=32, 4*hidden_size=512); PyTorch weights need a transpose``. Sizes not
    given are read off ``w_i`` and ``w_h``. Shapes are static, so this works under ``jit``.
    """
    cell = get(name)
    opts = cell_options(name, **options)
    spec = cell.param_shapes(**opts)
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of arrays with keys {', '.join(spec)}; got {type(params).__name__}")
    missing = [k for k in spec if k not in params]
    extra = [k for k in params if k not in spec]
    if missing or extra:
        what = "; ".join(
            filter(
                None,
                [
                    missing and f"missing {', '.join(map(repr, missing))}",
                    extra and f"unexpected {', '.join(map(repr, extra))}",
                ],
            )
        )
        raise ValueError(f"params of cell {name!r} with {opts}: {what}; expected keys {', '.join(spec)}")
    if input_size is None or hidden_size is None:
        D, H = _sizes_from(cell, spec, params)
        input_size = D if input_size is None else input_size
        hidden_size = H if hidden_size is None else hidden_size
    for key, symbols in spec.items():
        dims = [_dim(s, input_size, hidden_size) for s in symbols]
        want = tuple(d for d, _ in dims)
        got = tuple(jnp.shape(params[key]))
        if got == want:
            continue
        why = ", ".join(dict.fromkeys(e for _, e in dims))
        hint = ""
        if len(want) == 2 and got == want[::-1]:
            hint = "; PyTorch weights need a transpose"
        elif len(want) == 1 and got == (2,) + want:
            hint = "; a (2, N) bias is Keras's stacked (input, recurrent) layout: " + (
                "pass its rows as b_i = b[0] and b_h = b[1]" if "b_h" in spec else "pass b[0] + b[1]"
            )
        raise ValueError(f"params[{key!r}] has shape {got}; expected {want} ({why}){hint}")


def _check_inputs(name: str, params: Mapping[str, Array], x: Array, what: str, **options: Any) -> None:
    """check_params with the input size of ``x`` (last axis), naming ``x`` if ``w_i`` takes another."""
    D = x.shape[-1]
    w_i = jnp.shape(params["w_i"]) if isinstance(params, Mapping) and "w_i" in params else None
    if w_i is not None and len(w_i) == 2 and w_i[0] != D and w_i[1] != D:
        raise ValueError(
            f"{what} has shape {x.shape}, last axis {D}, but params['w_i'] has shape {w_i}: "
            f"the cell takes inputs of size {w_i[0]}"
        )
    check_params(name, params, input_size=D, **options)


# ---------------------------------------------------------------------------------------------------
# Init, carry, step, scan


def init(
    name: str,
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    input_init: str = "glorot_uniform",
    recurrent_scale: float = 1.0,
    forget_bias: float = 1.0,
    chrono_tmax: float = 0.0,
    dtype=jnp.float32,
    **options: Any,
) -> dict[str, Array]:
    """Parameters of cell ``name`` as a dict of arrays in the contract's layout.

    Args:
      key: PRNG key. input_size: D. hidden_size: H.
      input_init, recurrent_scale, forget_bias, chrono_tmax: see :mod:`lstmlab.cells.init`.
      options: the cell's options (:func:`option_names`).
    """
    opts = cell_options(name, **options)
    if int(input_size) < 1 or int(hidden_size) < 1:
        raise ValueError(f"input_size={input_size} and hidden_size={hidden_size} must be >= 1")
    cell = get(name)
    multiple, why = getattr(cell, "hidden_multiple", (1, ""))
    if int(hidden_size) % multiple:
        raise ValueError(f"hidden_size={hidden_size} must be a multiple of {multiple} ({why})")
    how = InitOptions(input_init, recurrent_scale, forget_bias, chrono_tmax, dtype)
    return cell.init(key, int(input_size), int(hidden_size), how, **opts)


def initial_carry(name: str, batch_size: int, hidden_size: int, dtype=jnp.float32, **options: Any) -> Carry:
    """Zero carry: ``LSTMState(h, c)`` for the LSTM family (``FGRState`` for variant FGR), ``h`` for
    GRU and RNN; each (B, H). The LSTM cell state ``c`` is kept in at least float32."""
    return get(name).initial_carry(batch_size, hidden_size, dtype, **cell_options(name, **options))


def _default_carry(name: str, params: Mapping[str, Array], x: Array, batch_size: int, options: dict[str, Any]) -> Carry:
    dtype = jnp.result_type(x.dtype, params["w_i"].dtype)
    return initial_carry(name, batch_size, sizes(name, params, **options)[1], dtype, **options)


def step(name: str, params: dict[str, Array], carry: Carry, x: Array, **options: Any) -> tuple[Carry, Array]:
    """One time step on raw input ``x`` (B, D): returns (new carry, output h (B, H))."""
    cell = get(name)
    opts = cell_options(name, **options)
    if jnp.ndim(x) != 2:
        raise ValueError(f"x must be (B, D); got shape {jnp.shape(x)}")
    _check_inputs(name, params, x, "x", **opts)
    new, _ = cell.forward(params, x @ params["w_i"] + params[cell.input_bias], carry, **opts)
    new = _scan.keep_dtypes(new, carry)
    return new, cell.output(new)


def _sequence_inputs(
    name: str, params: dict[str, Array], xs: Array, carry: Carry | None, options: dict[str, Any]
) -> tuple[Cell, dict[str, Any], Carry]:
    """(the cell, its checked options, the carry: ``carry`` or zeros) for a run of cell ``name`` over the
    time-major ``xs`` (T, B, D); ValueError for another shape or parameters that do not fit."""
    cell = get(name)
    opts = cell_options(name, **options)
    if jnp.ndim(xs) != 3:
        raise ValueError(f"xs must be time-major (T, B, D); got shape {jnp.shape(xs)}")
    _check_inputs(name, params, xs, "xs", **opts)
    if carry is None:
        carry = _default_carry(name, params, xs, xs.shape[1], opts)
    return cell, opts, carry


def scan(
    name: str,
    params: dict[str, Array],
    xs: Array,
    carry: Carry | None = None,
    *,
    seq_lengths: Array | None = None,
    reverse: bool = False,
    impl: str = "fast",
    remat_chunk: int | None = None,
    batch_axis: str | None = None,
    **options: Any,
) -> tuple[Carry, Array]:
    """Run cell ``name`` over the time-major sequence ``xs`` (T, B, D).

    Returns ``(final_carry, hs)`` with ``hs`` (T, B, H). ``carry`` defaults to zeros (``h`` in the
    compute dtype, LSTM ``c`` in at least float32). ``seq_lengths`` (B,) marks right-padded sequences:
    their carry stops at their end and padded outputs are zero; ``reverse=True`` runs each sequence
    backwards within its own length, outputs in the original order. jit-, grad- and vmap-compatible.
    A parameter of the wrong shape, or a missing or extra key, is a ValueError (:func:`check_params`).

    ``impl`` chooses the implementation (:mod:`lstmlab.cells.scan`): ``fast`` (default; hand-written
    backward pass; cells without one, e.g. variant FGR and the xLSTM and min cells, use the reference;
    reverse-mode autodiff only),
    ``reference`` (autodiff through ``lax.scan``; use it for ``jvp``/``jacfwd``), ``cudnn`` (plain LSTM
    on a CUDA GPU, :mod:`lstmlab.cells.cudnn`).
    A cell option ``form`` other than ``sequential`` (mLSTM, minGRU, minLSTM) computes the whole sequence
    at once or chunk by chunk instead of the step loop; the numbers are the same up to rounding.
    ``remat_chunk=K`` recomputes activations in the backward pass instead of storing them, in chunks
    of K steps (:mod:`lstmlab.cells.remat`): same results, far less memory for long sequences.
    ``batch_axis``: name of a mesh axis to split the batch along, e.g. ``"data"``. Only when given, and
    under ``jax.set_mesh(mesh)`` with that axis on more than one device (and B divisible by it), each
    device runs the recurrence on its own rows (:mod:`lstmlab.cells.sharding`); None (the default) never
    splits, whatever the ambient mesh.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is not an implementation; valid: {', '.join(IMPLS)}")
    _remat.check_remat_chunk(remat_chunk)
    cell, opts, carry = _sequence_inputs(name, params, xs, carry, options)
    B = xs.shape[1]
    if impl == "cudnn":
        from lstmlab.cells import cudnn as _cudnn  # imports jax.experimental.rnn only when asked for

        _cudnn.check_available(name, **opts)
        if remat_chunk is not None:
            raise ValueError("remat_chunk is not available with impl='cudnn'; use impl='fast'")
        return _cudnn.scan(params, xs, carry, seq_lengths=seq_lengths, reverse=reverse)

    def run(
        params: dict[str, Array], carry: Carry, xs: Array, seq_lengths: Array | None, reverse: bool = False
    ) -> tuple[Carry, Array]:
        return _scan.run(cell, opts, params, xs, carry, seq_lengths=seq_lengths, reverse=reverse, impl=impl)

    def run_all(params: dict[str, Array], carry: Carry, xs: Array, seq_lengths: Array | None):
        if remat_chunk is None:
            return run(params, carry, xs, seq_lengths, reverse)
        return _remat.chunked_scan(
            partial(run, params), carry, xs, chunk=remat_chunk, seq_lengths=seq_lengths, reverse=reverse
        )

    devices = _sharding.axis_size(batch_axis)
    if devices > 1 and B % devices == 0:
        return _sharding.split_batch(run_all, batch_axis, params, carry, xs, seq_lengths)
    return run_all(params, carry, xs, seq_lengths)


def scan_states(
    name: str,
    params: dict[str, Array],
    xs: Array,
    carry: Carry | None = None,
    *,
    seq_lengths: Array | None = None,
    probes: Carry | None = None,
    **options: Any,
) -> tuple[Carry, Array]:
    """The carry after every step: ``xs`` (T, B, D) -> (states, hs (T, B, H)), ``states`` the carry's
    structure with a leading T axis. Same loop and masking as :func:`scan` (forward direction, autodiff).

    ``probes`` (the carry's structure with a leading T axis) is added to the carry right after each step
    t: with zero probes nothing changes, and the gradient of a loss with respect to ``probes[t]`` is its
    total derivative with respect to the state at step t.
    """
    cell, opts, carry = _sequence_inputs(name, params, xs, carry, options)
    mask = None if seq_lengths is None else time_mask(xs.shape[0], jnp.asarray(seq_lengths))
    _, hs, _, states = _scan.loop(cell, opts, params, xs, carry, mask, probes=probes, states=True)
    return states, hs


def scan_gates(name: str, params: dict[str, Array], xs: Array, carry: Carry | None = None, **options: Any) -> dict:
    """The activations of every step by name (the cell's ``gates``: for the LSTM family ``i``, ``f``,
    ``g``, ``o``, ``c``, ``h``; for ``gru`` ``r``, ``z``, ``n``, ``u_n``, ``h``; for ``rnn`` ``h``), each
    with a leading T axis: ``xs`` (T, B, D) -> {name: (T, B, H)}. The carries come from the same loop as
    :func:`scan_states`; the gates of all steps are then evaluated at once from the carry entering each
    step, so :func:`scan` itself does no extra work. ValueError if the cell has no ``gates``."""
    cell = get(name)
    if not (hasattr(cell, "gates") and getattr(cell, "has_gates", lambda: True)()):
        raise ValueError(f"cell {name!r} has no gates method; see lstmlab.cells.base")
    cell, opts, carry = _sequence_inputs(name, params, xs, carry, options)
    _, _, _, states = _scan.loop(cell, opts, params, xs, carry, states=True)
    entering = jax.tree.map(lambda first, later: jnp.concatenate([first[None], later[:-1]]), carry, states)
    xp = xs @ params["w_i"] + params[cell.input_bias]
    return jax.vmap(lambda x, c: cell.gates(params, x, c, **opts))(xp, entering)
