"""Benchmark: one recurrent layer's training step (forward + backward) against PyTorch and Flax NNX.

    python scripts/bench.py                      # full run (several minutes on 2 cores)
    python scripts/bench.py --quick              # one small shape, fewer repetitions, no memory study
    python scripts/bench.py --out results/bench  # writes results/bench.json and results/bench.md
    python scripts/bench.py --charlm-only        # end-to-end +experiment=charlm: compile time, tokens/s

Without ``--out`` the report goes to a new folder, ``bench-results/<UTC time>/bench.json`` and ``.md``
(``bench-results/`` is ignored by git); ``--out`` never writes over a file git tracks.

What is timed, per cell (lstm, gru) and shape (batch B, time T, input D, hidden H): one jitted call that
returns the gradients of ``sum(hs * w)`` (a fixed random ``w``) with respect to the layer's parameters and
its input ``xs`` (T, B, D), i.e. a training step of one layer inside a stack. Contenders, all in this one
process and interleaved (each repetition runs every contender once, in rotating order) after a warm-up:

* ``lstmlab-fast`` / ``lstmlab-reference``: :class:`lstmlab.nn.Recurrent` with ``impl="fast"`` /
  ``impl="reference"``;
* ``flax``: ``nnx.RNN(nnx.OptimizedLSTMCell)`` (``nnx.GRUCell`` for gru), time-major;
* ``torch``: ``torch.nn.LSTM`` / ``torch.nn.GRU`` (oneDNN on CPU), when torch is installed
  (``pip install torch==2.13.0``), with ``xs.requires_grad``; gradients are reset to None each step.
  In this process torch runs with ``OMP_WAIT_POLICY=PASSIVE``: with GNU OpenMP's default spin-waiting,
  its threads and XLA's fight over the cores and a torch step becomes up to 1000x slower. As a check,
  ``torch-alone`` times the same step in a fresh process without JAX and with default OpenMP settings.
  Target ratios are judged against the faster of the two.

The JAX contenders also run in a fresh process with one XLA CPU device per core, each split over the
batch (``-split``). The repetitions are spread over ``--rounds`` rounds (3 by default); each round runs
the in-process block, then ``torch-alone``, then the ``-split`` process, so that the machine's speed,
which drifts on shared hardware, changes for every contender alike.

Reported: median time per step, tokens/s (T*B / time), GFLOP/s with

    FLOPs = 3 * 2 * T * B * (D + H) * G * H        (G = 4 gates for lstm, 3 for gru)

(the forward's matrix multiplies, once for the forward and twice for the backward: data gradients and
weight gradients; the elementwise gate math is not counted), ratios to each peer, and the ratio to the
throughput of one jitted (T*B, D+H) x (D+H, G*H) matmul on this machine (the practical ceiling).
Compile time is lower + compile of the jitted step. The memory study compiles the lstm step for long
sequences with and without ``remat_chunk`` and reports XLA's ``memory_analysis()`` (temporaries +
arguments + outputs) and the peak resident memory (VmHWM) of a fresh subprocess that runs one step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from lstmlab import cells  # noqa: E402
from lstmlab.nn import Recurrent  # noqa: E402
from lstmlab.train.distributed import usable_cores  # noqa: E402
from lstmlab.train.setup import make_mesh  # noqa: E402

torch: Any = None  # imported in main() when available (the [bench] extra is optional)

SHAPES = [(32, 100, 64, 128), (30, 50, 1, 300), (64, 128, 128, 512)]  # (B, T, D, H)
QUICK_SHAPES = [(32, 100, 64, 128)]
SMOKE_SHAPES = [(4, 8, 3, 8)]
# Targets from the speed issue: minimum ratio of lstmlab-fast's throughput to each peer's.
# The LSTM against torch.nn.LSTM (by hidden size) and Flax's OptimizedLSTMCell; the GRU against torch.nn.GRU
# ("at least 1.3x Flax OptimizedLSTMCell at every shape; GRU likewise against PyTorch's nn.GRU"). The GRU's
# ratio to Flax's GRUCell is reported but is not a target.
TARGETS = {
    "torch": {"lstm": {128: 0.9, 300: 1.0, 512: 1.0}, "gru": {128: 1.3, 300: 1.3, 512: 1.3}},
    "flax": {"lstm": 1.3},
    "matmul_at_512": 0.8,
    "charlm_first_step_s": 5.0,
}

Step = Callable[[], Any]


def flops(cell: str, B: int, T: int, D: int, H: int) -> float:
    return 3 * 2 * T * B * (D + H) * cells.num_gates(cell) * H


# ---------------------------------------------------------------------------------------------------
# Contenders: each returns (step, compile_seconds); step() runs one training step and blocks.


def _jax_step(loss: Callable, *args, mesh: Mesh | None = None) -> tuple[Step, float]:
    """A jitted gradient step of ``loss`` over all but its last argument. With ``mesh``, the arrays of
    shape (T, B, ...) are split along the batch over its ``"data"`` axis and the step is compiled and
    run under ``jax.set_mesh(mesh)``, as the trainer does."""
    grad = jax.jit(jax.grad(loss, argnums=tuple(range(len(args) - 1))))
    scope = contextlib.nullcontext if mesh is None else partial(jax.set_mesh, mesh)
    if mesh is not None:
        rows = NamedSharding(mesh, P(None, "data"))
        args = tuple(jax.device_put(a, rows) if getattr(a, "ndim", 0) == 3 else a for a in args)
    with scope():
        start = time.perf_counter()
        compiled = grad.lower(*args).compile()
        compile_s = time.perf_counter() - start

    def step():
        with scope():
            return jax.block_until_ready(compiled(*args))

    return step, compile_s


def layer_loss(cell: str, B: int, T: int, D: int, H: int, **layer_options: Any) -> tuple[Callable, tuple]:
    """``(loss, (params, xs, w))`` of one :class:`lstmlab.nn.Recurrent` layer: ``sum(hs * w)`` for fixed
    random ``xs`` (T, B, D) and ``w`` (T, B, H); ``layer_options`` go to the layer."""
    layer = Recurrent(cell, D, H, rngs=nnx.Rngs(0), **layer_options)
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    xs = jax.random.normal(jax.random.key(1), (T, B, D))
    w = jax.random.normal(jax.random.key(2), (T, B, H))

    def loss(params, xs, w):
        _, hs = nnx.merge(graphdef, params, rest)(xs)
        return jnp.sum(hs * w)

    return loss, (params, xs, w)


def lstmlab_step(cell: str, impl: str, B: int, T: int, D: int, H: int, mesh: Mesh | None = None) -> tuple[Step, float]:
    """:class:`lstmlab.nn.Recurrent`; under a mesh it runs one recurrence per device
    (``batch_axis="data"``, as ``trainer.split_per_device`` builds it)."""
    loss, args = layer_loss(cell, B, T, D, H, impl=impl, batch_axis=None if mesh is None else "data")
    return _jax_step(loss, *args, mesh=mesh)


def flax_step(cell: str, B: int, T: int, D: int, H: int, mesh: Mesh | None = None) -> tuple[Step, float]:
    """``nnx.RNN`` over the cell; under a mesh, split over the batch with ``shard_map`` the same way."""
    cell_cls = {"lstm": nnx.OptimizedLSTMCell, "gru": nnx.GRUCell}[cell]
    rnn = nnx.RNN(cell_cls(D, H, rngs=nnx.Rngs(0)), time_major=True)
    graphdef, params, rest = nnx.split(rnn, nnx.Param, ...)
    xs = jax.random.normal(jax.random.key(1), (T, B, D))
    w = jax.random.normal(jax.random.key(2), (T, B, H))

    def run(params, xs):
        zeros = jnp.zeros((xs.shape[1], H))
        carry = (zeros, zeros) if cell == "lstm" else zeros  # (c, h) for the LSTM cell, h for the GRU
        return nnx.merge(graphdef, params, rest)(xs, initial_carry=carry)

    if mesh is not None:
        run = jax.shard_map(run, in_specs=(P(), P(None, "data")), out_specs=P(None, "data"), check_vma=False)

    def loss(params, xs, w):
        return jnp.sum(run(params, xs) * w)

    return _jax_step(loss, params, xs, w, mesh=mesh)


def torch_step(cell: str, B: int, T: int, D: int, H: int) -> tuple[Step, float]:
    torch.manual_seed(0)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](D, H)
    xs = torch.randn(T, B, D, requires_grad=True)
    w = torch.randn(T, B, H)

    def step():
        module.zero_grad(set_to_none=True)
        xs.grad = None
        hs, _ = module(xs)
        (hs * w).sum().backward()

    return step, 0.0


def matmul_step(cell: str, B: int, T: int, D: int, H: int) -> Step:
    """The practical ceiling: one jitted (T*B, D+H) x (D+H, G*H) matmul."""
    a = jax.random.normal(jax.random.key(0), (T * B, D + H))
    b = jax.random.normal(jax.random.key(1), (D + H, cells.num_gates(cell) * H))
    compiled = jax.jit(jnp.matmul).lower(a, b).compile()
    return lambda: jax.block_until_ready(compiled(a, b))


def torch_alone(cell: str, shape: tuple[int, int, int, int], reps: int, warmup: int) -> list[float]:
    """Times of the torch step in a fresh subprocess (no JAX, default OpenMP settings)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    cmd = [sys.executable, __file__, "--torch-child", cell, *map(str, shape), str(reps), str(warmup)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def split_times(cell: str, shape: tuple[int, int, int, int], reps: int, warmup: int) -> tuple[dict, dict]:
    """(times, compile seconds) of the JAX contenders in a fresh subprocess with one XLA CPU device per
    core, each splitting the batch over them (``-split``), interleaved with each other."""
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(usable_cores())}
    cmd = [sys.executable, __file__, "--split-child", cell, *map(str, shape), str(reps), str(warmup)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["times"], result["compile_s"]


def split_child(cell: str, shape: tuple[int, int, int, int], reps: int, warmup: int) -> dict:
    mesh = make_mesh(None, shape[0])  # as many devices as divide the batch, as the trainer takes
    built = {
        "lstmlab-fast-split": lstmlab_step(cell, "fast", *shape, mesh=mesh),
        "lstmlab-reference-split": lstmlab_step(cell, "reference", *shape, mesh=mesh),
        "flax-split": flax_step(cell, *shape, mesh=mesh),
    }
    times = time_interleaved({name: step for name, (step, _) in built.items()}, reps, warmup)
    return {"devices": int(mesh.devices.size), "times": times, "compile_s": {name: c for name, (_, c) in built.items()}}


def contenders(cell: str, shape: tuple[int, int, int, int], with_torch: bool) -> dict[str, tuple[Step, float]]:
    steps = {
        "lstmlab-fast": lstmlab_step(cell, "fast", *shape),
        "lstmlab-reference": lstmlab_step(cell, "reference", *shape),
        "flax": flax_step(cell, *shape),
    }
    if with_torch:
        steps["torch"] = torch_step(cell, *shape)
    return steps


def time_interleaved(steps: dict[str, Step], reps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each step: warm-up, then ``reps`` repetitions, each running every step once
    (in rotating order)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def bench_speed(
    cell_names: list[str],
    shapes: list[tuple],
    reps: int,
    warmup: int,
    with_torch: bool,
    split: bool = True,
    rounds: int = 1,
) -> list[dict]:
    """Time every contender at every shape. The ``reps`` repetitions are spread over ``rounds``
    rounds; each round times the in-process contenders (interleaved), then ``torch-alone`` and the
    ``-split`` contenders in fresh processes, so a drift of the machine's speed during the run hits
    every contender alike instead of only the ones measured last."""
    per_round = -(-reps // rounds)
    rows = []
    for cell in cell_names:
        for shape in shapes:
            B, T, D, H = shape
            built = contenders(cell, shape, with_torch)
            steps = {name: step for name, (step, _) in built.items()}
            steps["matmul"] = matmul_step(cell, *shape)
            times: dict[str, list[float]] = {}
            split_compile: dict[str, list[float]] = {}
            for _ in range(rounds):
                block = time_interleaved(steps, per_round, warmup)
                if with_torch:
                    block["torch-alone"] = torch_alone(cell, shape, per_round, warmup)
                if split:
                    more, compile_s = split_times(cell, shape, per_round, warmup)
                    block.update(more)
                    for name, c in compile_s.items():
                        split_compile.setdefault(name, []).append(c)
                for name, ts in block.items():
                    times.setdefault(name, []).extend(ts)
            if with_torch:
                built["torch-alone"] = (None, 0.0)
            built.update({name: (None, statistics.median(cs)) for name, cs in split_compile.items()})
            fl = flops(cell, *shape)
            mm_fl = 2 * T * B * (D + H) * cells.num_gates(cell) * H
            row: dict[str, Any] = {
                "cell": cell,
                "B": B,
                "T": T,
                "D": D,
                "H": H,
                "flops": fl,
                "reps": per_round * rounds,
                "rounds": rounds,
                "matmul_gflops": mm_fl / statistics.median(times["matmul"]) / 1e9,
                "results": {},
            }
            for name, (_, compile_s) in built.items():
                med = statistics.median(times[name])
                row["results"][name] = {
                    "median_ms": 1e3 * med,
                    "min_ms": 1e3 * min(times[name]),
                    "samples": len(times[name]),
                    "tokens_per_s": T * B / med,
                    "gflops": fl / med / 1e9,
                    "compile_s": None if name.startswith("torch") else compile_s,
                }
            for mine, key in (("lstmlab-fast", "fast"), ("lstmlab-fast-split", "split")):
                if mine not in row["results"]:
                    continue
                gflops = row["results"][mine]["gflops"]
                ratios = {
                    f"{key}/{peer}": gflops / res["gflops"] for peer, res in row["results"].items() if peer != mine
                }
                ratios[f"{key}/matmul"] = gflops / row["matmul_gflops"]
                row["ratios" if key == "fast" else "split_ratios"] = ratios
            rows.append(row)
            print(format_speed_row(row), flush=True)
    return rows


def format_speed_row(row: dict) -> str:
    shape = f"{row['cell']} B={row['B']} T={row['T']} D={row['D']} H={row['H']}"
    parts = [f"{name} {r['median_ms']:.2f} ms {r['gflops']:.0f} GF/s" for name, r in row["results"].items()]
    ratios = " ".join(f"{k}={v:.2f}" for k, v in {**row["ratios"], **row.get("split_ratios", {})}.items())
    return f"{shape}: " + " | ".join(parts) + f" | matmul {row['matmul_gflops']:.0f} GF/s | {ratios}"


# ---------------------------------------------------------------------------------------------------
# The xLSTM and min cells: beside the LSTM, and their forms against each other

MODERN_CELLS = ("slstm", "mlstm", "mingru", "minlstm")
FORMS = {"mlstm": ("sequential", "chunkwise", "parallel"), "mingru": ("sequential", "parallel"),
         "minlstm": ("sequential", "parallel")}  # fmt: skip
FORM_SHAPE = (16, 128, 128)  # B, D, H of the forms study
FORM_LENGTHS = (100, 1000, 10000)
MAX_RUN_GIB = 8.0  # a form whose step needs more (XLA's estimate) is compiled and reported, not run


def cell_step(cell: str, B: int, T: int, D: int, H: int, **options: Any) -> tuple[Step, float, float]:
    """A training step of one :class:`lstmlab.nn.Recurrent` layer of ``cell`` with ``options``, the
    compile time and XLA's estimate of its memory (temporaries + arguments + outputs) in MiB."""
    loss, args = layer_loss(cell, B, T, D, H, **options)
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    start = time.perf_counter()
    compiled = grad.lower(*args).compile()
    compile_s = time.perf_counter() - start
    m = compiled.memory_analysis()
    mib = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes) / 2**20

    def step():
        return jax.block_until_ready(compiled(*args))

    return step, compile_s, mib


def _timed_rows(built: dict[str, tuple[Step, float, float]], reps: int, warmup: int, **fields: Any) -> list[dict]:
    runnable = {name: step for name, (step, _, mib) in built.items() if mib <= MAX_RUN_GIB * 1024}
    times = time_interleaved(runnable, reps, warmup)
    T, B = fields["T"], fields["B"]
    return [
        {
            **fields,
            "contender": name,
            "median_ms": 1e3 * statistics.median(times[name]) if name in times else None,
            "tokens_per_s": T * B / statistics.median(times[name]) if name in times else None,
            "compile_s": compile_s,
            "xla_mib": mib,
        }
        for name, (_, compile_s, mib) in built.items()
    ]


def bench_cells(shapes: list[tuple], reps: int, warmup: int) -> list[dict]:
    """Each xLSTM and min cell's training step (its default form) beside the LSTM's, interleaved."""
    rows = []
    for B, T, D, H in shapes:
        built = {cell: cell_step(cell, B, T, D, H) for cell in ("lstm", *MODERN_CELLS)}
        rows += _timed_rows(built, reps, warmup, B=B, T=T, D=D, H=H)
        print("cells", B, T, D, H, {r["contender"]: r["median_ms"] for r in rows[-len(built) :]}, flush=True)
    return rows


def bench_forms(lengths: list[int], reps: int, warmup: int, shape: tuple[int, int, int] = FORM_SHAPE) -> list[dict]:
    """Every form of the mLSTM, minGRU and minLSTM at each length: time per training step (interleaved
    within a cell and length) and XLA's memory estimate; a form needing more than MAX_RUN_GIB is not run.
    ``shape``: (B, D, H)."""
    B, D, H = shape
    rows = []
    for cell, forms in FORMS.items():
        for T in lengths:
            built = {form: cell_step(cell, B, T, D, H, form=form) for form in forms}
            rows += _timed_rows(built, reps, warmup, cell=cell, B=B, T=T, D=D, H=H)
            print(
                "forms", cell, T, {r["contender"]: (r["median_ms"], round(r["xla_mib"])) for r in rows[-len(forms) :]}
            )
    return rows


def form_targets(rows: list[dict]) -> list[str]:
    """The speed targets of the parallel forms, judged on ``rows`` of :func:`bench_forms`."""
    by = {(r["cell"], r["T"], r["contender"]): r["median_ms"] for r in rows}
    out = []
    for cell in ("mingru", "minlstm"):
        T = max(t for c, t, _ in by if c == cell)
        seq, par = by.get((cell, T, "sequential")), by.get((cell, T, "parallel"))
        if seq and par:
            got = seq / par
            out.append(f"{cell} parallel vs sequential at T={T}: {got:.1f}x (target >= 5x) {_verdict(5 - got, 5)}")
    for T in sorted(t for c, t, f in by if c == "mlstm" and f == "chunkwise"):
        seq, chunk = by.get(("mlstm", T, "sequential")), by.get(("mlstm", T, "chunkwise"))
        if seq and chunk and T >= 1000:
            got = seq / chunk
            out.append(
                f"mlstm chunkwise vs sequential at T={T}: {got:.2f}x (target > 1x) {_verdict(1 - got + 1e-9, 1)}"
            )
    return out


# ---------------------------------------------------------------------------------------------------
# Memory against sequence length

MEMORY_SHAPE = (32, 64, 128)  # B, D, H of the lstm in the memory study


def _rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB, from /proc/self/status (Linux).

    ``getrusage``'s max RSS would do for the peak, but Linux carries it over from the parent at fork."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def memory_one(T: int, remat_chunk: int | None) -> dict:
    """Compile and run one lstm training step of length T; XLA's memory analysis and peak RSS."""
    B, D, H = MEMORY_SHAPE
    params = cells.init("lstm", jax.random.key(0), D, H)
    xs = jnp.ones((T, B, D))

    def loss(params, xs):
        return jnp.sum(cells.scan("lstm", params, xs, remat_chunk=remat_chunk)[1])

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
    analysis = compiled.memory_analysis()
    rss_before, _ = _rss_mib()
    jax.block_until_ready(compiled(params, xs))
    _, peak = _rss_mib()
    return {
        "T": T,
        "remat_chunk": remat_chunk,
        "xla_temp_mb": analysis.temp_size_in_bytes / 2**20,
        "xla_total_mb": (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes + analysis.output_size_in_bytes)
        / 2**20,
        "rss_before_step_mb": rss_before,
        "peak_rss_mb": peak,
    }


def bench_memory(lengths: list[int], remat_chunk: int) -> list[dict]:
    rows = []
    for T in lengths:
        for chunk in (None, remat_chunk):
            cmd = [sys.executable, __file__, "--memory-child", str(T), str(chunk or 0)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"memory lstm B,D,H={MEMORY_SHAPE} T={T} remat_chunk={chunk}: XLA temp "
                f"{row['xla_temp_mb']:.0f} MiB, XLA total {row['xla_total_mb']:.0f} MiB, "
                f"RSS before the step {row['rss_before_step_mb']:.0f} MiB, peak RSS {row['peak_rss_mb']:.0f} MiB",
                flush=True,
            )
    return rows


# ---------------------------------------------------------------------------------------------------
# End-to-end hook

CHARLM_STEPS = 50  # timed training steps of the end-to-end charlm measurement (after CHARLM_WARMUP)
CHARLM_WARMUP = 5


def charlm_one(impl: str, overrides: list[str], steps: int) -> dict:
    """One impl's end-to-end charlm training in this (fresh) process: the trainer's own jitted step on
    the experiment's real batches (composed exactly as ``python -m lstmlab +experiment=charlm`` does).

    Returns the seconds to trace/lower and to compile the first step (no compilation cache), the first
    call's wall time, and the median and overall tokens/s of ``steps`` steps after a warm-up."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lstmlab.cli import conf_dir, register_schema
    from lstmlab.train import setup

    register_schema()
    split = ["trainer.split_per_device=true"] if len(jax.devices()) > 1 else []
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=charlm", f"model.impl={impl}", *split, *overrides])
    config = OmegaConf.to_object(cfg)
    run = setup(config)  # what the trainer builds: state on the mesh, batches split along "data"
    batch_size, seq_len = run.dataset.train_batch(0)["inputs"].shape
    mesh, state, batch = run.mesh, run.state, run.batch(0)
    with run.scope():
        t0 = time.perf_counter()
        lowered = run.jit_train_step.lower(state, batch)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
    step = run.in_scope(compiled)
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    t3 = time.perf_counter()
    times = []
    for i in range(1, CHARLM_WARMUP + steps + 1):
        batch = run.batch(i)  # host data work is timed
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        if i > CHARLM_WARMUP:
            times.append(time.perf_counter() - start)
    tokens = batch_size * seq_len
    return {
        "impl": impl,
        "devices": int(mesh.devices.size),
        "batch": int(batch_size),
        "seq_len": int(seq_len),
        "hidden_size": config.model.hidden_size,
        "num_layers": config.model.num_layers,
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
        "first_step_s": t3 - t0,
        "median_step_ms": 1e3 * statistics.median(times),
        "tokens_per_s": tokens / statistics.median(times),
        "tokens_per_s_overall": tokens * len(times) / sum(times),
        "steps": len(times),
    }


def charlm_throughput(args: argparse.Namespace, rounds: int = 1) -> list[dict]:
    """End-to-end ``+experiment=charlm`` training throughput and compile time, for impl fast and
    reference, each in a fresh subprocess (cold compile, no persistent compilation cache). With
    ``rounds`` > 1 every configuration runs once per round, in turn, and each figure is the median
    over the rounds (``tokens_per_s_rounds`` keeps every round's)."""
    runs = [("fast", 1), ("reference", 1)]
    if usable_cores() > 1 and not args.no_split:
        runs.append(("fast", usable_cores()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    overrides = [f"--charlm-override={o}" for o in args.charlm_override]
    results: dict[tuple[str, int], list[dict]] = {run: [] for run in runs}
    for _ in range(rounds):
        for impl, devices in runs:
            cmd = [
                sys.executable,
                __file__,
                "--charlm-child",
                impl,
                "--charlm-steps",
                str(args.charlm_steps),
                *overrides,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**env, "JAX_NUM_CPU_DEVICES": str(devices)})
            if out.returncode != 0:
                raise RuntimeError(f"charlm child ({impl}) failed: {out.stderr.strip().splitlines()[-1:]}")
            results[(impl, devices)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for per_round in results.values():
        row = dict(per_round[0])
        for key in ("lower_s", "compile_s", "first_step_s", "median_step_ms"):
            row[key] = statistics.median(r[key] for r in per_round)
        tokens = row["batch"] * row["seq_len"]
        row["tokens_per_s"] = tokens / (row["median_step_ms"] / 1e3)
        row["tokens_per_s_overall"] = statistics.median(r["tokens_per_s_overall"] for r in per_round)
        row["tokens_per_s_rounds"] = [r["tokens_per_s"] for r in per_round]
        print(
            f"charlm {row['impl']} on {row['devices']} device(s): first step {row['first_step_s']:.2f} s "
            f"(lower {row['lower_s']:.2f} + compile {row['compile_s']:.2f} + run), "
            f"{row['tokens_per_s']:.0f} tokens/s ({row['median_step_ms']:.1f} ms/step; rounds: "
            + ", ".join(f"{t:.0f}" for t in row["tokens_per_s_rounds"])
            + ")",
            flush=True,
        )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------
# Report


def markdown(report: dict) -> str:
    load = " -> ".join(f"{report[k][0]:.1f}" for k in ("load_average_before", "load_average_after") if k in report)
    lines = [
        "# lstmlab benchmark\n",
        f"Machine: {report['machine']}; 1-minute load average {load} "
        f"(other jobs share the cores when it exceeds the core count). Command: `{report['command']}`\n",
        "Training step (forward + backward, gradients for parameters and input) of one layer; "
        f"median of interleaved repetitions, spread over {report.get('rounds', 1)} round(s) (in-process, "
        "torch alone, split per core). FLOPs = 3 * 2 * T * B * (D + H) * G * H (G = 4 lstm, 3 gru); "
        "elementwise math not counted.\n",
    ]
    for row in report["speed"]:
        lines.append(
            f"\n## {row['cell']} B={row['B']} T={row['T']} D={row['D']} H={row['H']} "
            f"(same-size matmul: {row['matmul_gflops']:.0f} GFLOP/s)\n"
        )
        split = row.get("split_ratios", {})
        lines.append("| contender | median ms | tokens/s | GFLOP/s | fast / this | fast-split / this | compile s |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in row["results"].items():
            ratio = row["ratios"].get(f"fast/{name}", 1.0)
            ratio_split = f"{split.get(f'split/{name}', 1.0):.2f}" if split else "-"
            compile_s = "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
            lines.append(
                f"| {name} | {r['median_ms']:.2f} | {r['tokens_per_s']:.0f} | {r['gflops']:.1f} | "
                f"{ratio:.2f} | {ratio_split} | {compile_s} |"
            )
        matmul_split = f"{split['split/matmul']:.2f}" if split else "-"
        lines.append(
            f"| matmul ceiling | | | {row['matmul_gflops']:.1f} | {row['ratios']['fast/matmul']:.2f} | "
            f"{matmul_split} | |"
        )
    if report.get("charlm"):
        lines.append("\n## End to end: `+experiment=charlm` training step\n")
        lines.append(
            "The trainer's jitted step on the experiment's batches, in a fresh process; first step = "
            "trace + compile + run (no compilation cache); tokens/s = median over timed steps; each "
            "figure the median over the rounds (runs of every configuration in turn).\n"
        )
        lines.append(
            "| impl | devices | B x T | layers x H | lower s | compile s | first step s | ms/step "
            "| tokens/s | tokens/s per round |"
        )
        lines.append("|---|---:|---|---|---:|---:|---:|---:|---:|---|")
        for r in report["charlm"]:
            lines.append(
                f"| {r['impl']} | {r['devices']} | {r['batch']} x {r['seq_len']} | "
                f"{r['num_layers']} x {r['hidden_size']} | "
                f"{r['lower_s']:.2f} | {r['compile_s']:.2f} | {r['first_step_s']:.2f} | "
                f"{r['median_step_ms']:.1f} | {r['tokens_per_s']:.0f} | "
                + ", ".join(f"{t:.0f}" for t in r.get("tokens_per_s_rounds", []))
                + " |"
            )
    if report.get("cells"):
        lines.append("\n## The xLSTM and min cells beside the LSTM\n")
        lines.append(
            "Training step of one layer (each cell in its default form), interleaved repetitions; XLA MiB "
            "= temporaries + arguments + outputs of the compiled step.\n"
        )
        lines.append("| B x T, D -> H | cell | median ms | tokens/s | vs lstm | compile s | XLA MiB |")
        lines.append("|---|---|---:|---:|---:|---:|---:|")
        lstm = {(r["B"], r["T"], r["D"], r["H"]): r["median_ms"] for r in report["cells"] if r["contender"] == "lstm"}
        for r in report["cells"]:
            key = (r["B"], r["T"], r["D"], r["H"])
            ran = r["median_ms"] is not None
            lines.append(
                f"| {r['B']} x {r['T']}, {r['D']} -> {r['H']} | {r['contender']} | "
                + (f"{r['median_ms']:.2f} | {r['tokens_per_s']:.0f} | " if ran else "not run | | ")
                + (f"{r['median_ms'] / lstm[key]:.2f}x time" if ran and lstm.get(key) else "-")
                + f" | {r['compile_s']:.2f} | {r['xla_mib']:.0f} |"
            )
    if report.get("forms"):
        B, D, H = report.get("form_shape", FORM_SHAPE)
        lines.append(f"\n## Forms of a cell against its sequential form, B={B} D={D} H={H}\n")
        lines.append(
            "Same numbers, computed step by step (sequential), all at once (parallel) or in chunks "
            f"(chunkwise, 64 steps); a form whose step XLA estimates above {MAX_RUN_GIB:.0f} GiB is not run.\n"
        )
        lines.append("| cell | T | form | median ms | speed-up vs sequential | compile s | XLA MiB |")
        lines.append("|---|---:|---|---:|---:|---:|---:|")
        seq = {(r["cell"], r["T"]): r["median_ms"] for r in report["forms"] if r["contender"] == "sequential"}
        for r in report["forms"]:
            ms = "not run" if r["median_ms"] is None else f"{r['median_ms']:.1f}"
            base = seq.get((r["cell"], r["T"]))
            speedup = f"{base / r['median_ms']:.2f}x" if base and r["median_ms"] else "-"
            lines.append(
                f"| {r['cell']} | {r['T']} | {r['contender']} | {ms} | {speedup} | {r['compile_s']:.2f} | "
                f"{r['xla_mib']:.0f} |"
            )
    if report.get("targets"):
        lines.append("\n## Targets\n")
        lines += [f"- {t}" for t in report["targets"]]
    if report.get("memory"):
        lines.append(f"\n## Memory, lstm B,D,H={MEMORY_SHAPE}\n")
        lines.append(
            "XLA total = temporaries + arguments + outputs (from `memory_analysis()`); RSS of a fresh "
            "process before and at the peak of one step.\n"
        )
        lines.append("| T | remat_chunk | XLA temp MiB | XLA total MiB | RSS before MiB | peak RSS MiB |")
        lines.append("|---:|---:|---:|---:|---:|---:|")
        for m in report["memory"]:
            lines.append(
                f"| {m['T']} | {m['remat_chunk'] or '-'} | {m['xla_temp_mb']:.0f} | "
                f"{m['xla_total_mb']:.0f} | {m['rss_before_step_mb']:.0f} | {m['peak_rss_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def _verdict(shortfall: float, target: float) -> str:
    """ "met", or by how much (in % of the target) a result fell short of it."""
    return "met" if shortfall <= 0 else f"MISSED by {100 * shortfall / target:.0f}%"


def check_targets(rows: list[dict]) -> list[str]:
    """One line per target: met or missed, and by how much."""
    out = []
    for row in rows:
        name = f"{row['cell']} H={row['H']}"
        # lstmlab's best: the split layer (what the trainer runs on a CPU split into per-core devices)
        # when it was measured and is faster, else one device
        key, ratios = "fast", row["ratios"]
        split = row.get("split_ratios")
        if split and split["split/lstmlab-fast"] > 1:
            key, ratios = "split", split
        checks = []
        torch_target = TARGETS["torch"].get(row["cell"], {}).get(row["H"])
        if f"{key}/torch" in ratios and torch_target is not None:
            worst = min(ratios[f"{key}/torch"], ratios.get(f"{key}/torch-alone", float("inf")))
            checks.append((key, "torch (faster of torch, torch-alone)", worst, torch_target))
        flax_target = TARGETS["flax"].get(row["cell"])
        if flax_target is not None:
            checks.append(("fast", "flax (both on one device)", row["ratios"]["fast/flax"], flax_target))
            if split:
                checks.append(("split", "flax-split (both split per core)", split["split/flax-split"], flax_target))
        if row["H"] == 512:
            checks.append((key, "matmul", ratios[f"{key}/matmul"], TARGETS["matmul_at_512"]))
        for mine, peer, got, want in checks:
            out.append(f"{name}: {mine}/{peer} = {got:.2f} (target >= {want}) {_verdict(want - got, want)}")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one shape, 5 repetitions, no memory study")
    parser.add_argument("--smoke", action="store_true", help="tiny shape, 2 repetitions (for the test suite)")
    parser.add_argument("--cells", default="lstm,gru", help="comma-separated: lstm,gru")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per contender")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds the repetitions are spread over (default 3; 1 with --quick/--smoke)",
    )
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--memory-lengths", default="1000,4000,16000", help="T values of the memory study")
    parser.add_argument("--remat-chunk", type=int, default=64, help="remat_chunk of the memory study")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory study")
    parser.add_argument(
        "--modern",
        action="store_true",
        help="also the xLSTM and min cells beside the LSTM and their forms at --form-lengths",
    )
    parser.add_argument("--modern-only", action="store_true", help="only the xLSTM and min cells")
    parser.add_argument("--form-lengths", default=",".join(map(str, FORM_LENGTHS)), help="T values of the forms study")
    parser.add_argument(
        "--charlm", action="store_true", help="also time +experiment=charlm end to end (compile time and tokens/s)"
    )
    parser.add_argument("--charlm-only", action="store_true", help="only the end-to-end charlm measurement")
    parser.add_argument("--charlm-steps", type=int, default=CHARLM_STEPS, help="timed charlm steps")
    parser.add_argument(
        "--charlm-override",
        action="append",
        default=[],
        help="a Hydra override for the charlm measurement (repeatable), e.g. model.hidden_size=64",
    )
    parser.add_argument("--charlm-child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", default=None, help="write OUT.json and OUT.md (default: bench-results/<UTC time>/bench.json and .md)"
    )
    parser.add_argument(
        "--keep",
        help="with --modern: also write the xLSTM and min cells' rows to KEEP/bench_cells.jsonl and "
        "KEEP/bench_forms.jsonl (kept results, e.g. docs/results)",
    )
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--torch-child", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--split-child", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-split", action="store_true", help="skip the JAX contenders split over one CPU device per core"
    )
    args = parser.parse_args(argv)

    if args.memory_child:
        T, chunk = args.memory_child
        print(json.dumps(memory_one(T, chunk or None)))
        return {}

    if args.charlm_child:
        print(json.dumps(charlm_one(args.charlm_child, args.charlm_override, args.charlm_steps)))
        return {}
    if args.split_child:
        cell, *numbers = args.split_child
        B, T, D, H, reps, warmup = map(int, numbers)
        print(json.dumps(split_child(cell, (B, T, D, H), reps, warmup)))
        return {}
    global torch
    if args.torch_child:
        import torch

        cell, *numbers = args.torch_child
        B, T, D, H, reps, warmup = map(int, numbers)
        step, _ = torch_step(cell, B, T, D, H)
        # torch's first steps are slow (oneDNN sets up its primitives): warm up at least 5 steps
        print(json.dumps(time_interleaved({"torch": step}, reps, max(warmup, 5))["torch"]))
        return {}
    out = Path(args.out) if args.out else new_results_dir() / "bench"
    tracked = tracked_files([out.with_suffix(".json"), out.with_suffix(".md")]) if out.parent.is_dir() else []
    if tracked:
        parser.error(
            f"--out={args.out} would write over {', '.join(map(str, tracked))}, which git tracks; choose another --out"
        )
    if not args.no_torch:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch loads OpenMP; see the module docstring
        try:
            import torch

            torch.set_num_threads(os.cpu_count() or 1)
        except ImportError:
            torch = None
    shapes = SMOKE_SHAPES if args.smoke else QUICK_SHAPES if args.quick else SHAPES
    reps = args.reps if args.reps is not None else 2 if args.smoke else 5 if args.quick else 21
    rounds = args.rounds if args.rounds is not None else 1 if args.smoke or args.quick else 3  # charlm too
    if rounds < 1 or reps < 1:
        parser.error(f"--reps={reps} and --rounds={rounds} must be at least 1")
    with_torch = torch is not None
    if torch is None and not args.no_torch:
        print("torch not installed: skipping the PyTorch contender (pip install torch==2.13.0)")
    report: dict[str, Any] = {
        "command": " ".join(["python", "scripts/bench.py"] + (argv if argv is not None else sys.argv[1:])),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, jax {jax.__version__}"
        + (f", torch {torch.__version__}" if with_torch else ""),
    }
    report["load_average_before"] = os.getloadavg()
    report["rounds"] = rounds
    if args.charlm_only or args.modern_only:
        args.charlm, args.no_memory = args.charlm_only, True
        args.modern = args.modern or args.modern_only
        report["speed"] = []
    else:
        report["speed"] = bench_speed(
            args.cells.split(","),
            shapes,
            reps,
            warmup=1 if args.smoke else 3,
            with_torch=with_torch,
            split=not args.no_split and usable_cores() > 1,
            rounds=rounds,
        )
    report["targets"] = [] if args.smoke else check_targets(report["speed"])
    for line in report["targets"]:
        print(line)
    if args.modern:
        report["cells"] = bench_cells(shapes, reps, warmup=1 if args.smoke else 2)
        lengths = [8] if args.smoke else [int(t) for t in args.form_lengths.split(",")]
        B, _, D, H = SMOKE_SHAPES[0]
        report["form_shape"] = (B, D, H) if args.smoke else FORM_SHAPE
        report["forms"] = bench_forms(lengths, reps, warmup=1, shape=report["form_shape"])
        if not args.smoke:
            report["targets"] += form_targets(report["forms"])
    if not (args.quick or args.smoke or args.no_memory):
        report["memory"] = bench_memory([int(t) for t in args.memory_lengths.split(",")], args.remat_chunk)
    if args.charlm:
        report["charlm"] = charlm_throughput(args, rounds)
        want = TARGETS["charlm_first_step_s"]
        for fast in (r for r in report["charlm"] if r["impl"] == "fast"):
            got = fast["lower_s"] + fast["compile_s"]
            report["targets"].append(
                f"charlm first step on {fast['devices']} device(s) compiled (lower + "
                f"compile) in {got:.2f} s (target <= {want} s) {_verdict(got - want, want)}"
            )
            print(report["targets"][-1])
    report["load_average_after"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    if args.keep:
        for path in keep(report, Path(args.keep)):
            print(f"kept {path}")
    return report


def modern_records(report: dict) -> dict[str, list[dict]]:
    """The xLSTM and min cells' rows as kept results (:mod:`lstmlab.report.results`), one record per
    cell (or form) and shape, from which docs/cells.md's speed tables are generated: ``{"bench_cells":
    [...], "bench_forms": [...]}``; a form not run has no time."""
    where = {"machine": report["machine"], "load": [report["load_average_before"][0], report["load_average_after"][0]]}

    def record(run: str, config: dict, row: dict) -> dict:
        summary = {k: None if row[k] is None else round(row[k], 3) for k in ("median_ms", "xla_mib", "compile_s")}
        return {"run": run, "status": "completed", "seconds": None, "config": config | where, "summary": summary}

    cells = [
        record(
            f"{r['B']}x{r['T']}x{r['D']}x{r['H']}/{r['contender']}",
            {"shape": f"{r['B']} x {r['T']}, {r['D']} -> {r['H']}", "cell": {"name": r["contender"]}},
            r,
        )
        for r in report.get("cells", [])
    ]
    forms = [
        record(
            f"{r['cell']}/{r['T']}/{r['contender']}",
            {
                "T": r["T"],
                "cell": {"name": r["cell"], "form": r["contender"]},
                "shape": f"B={r['B']} D={r['D']} H={r['H']}",
            },
            r,
        )
        for r in report.get("forms", [])
    ]
    return {"bench_cells": cells, "bench_forms": forms}


def keep(report: dict, folder: Path) -> list[Path]:
    """Write :func:`modern_records` to ``folder/NAME.jsonl``; returns the files written."""
    from lstmlab.report import results

    written = []
    for name, records in modern_records(report).items():
        if records:
            results.write(records, folder / f"{name}.jsonl")
            written.append(folder / f"{name}.jsonl")
    return written


def new_results_dir(root: Path = Path("bench-results")) -> Path:
    """A folder that does not exist yet, ``root/<UTC time>`` (``-2``, ``-3``, ... if taken)."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime())
    candidate, n = root / stamp, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate


def tracked_files(paths: list[Path]) -> list[Path]:
    """The ``paths`` that git tracks (none outside a git work tree, or without git)."""
    tracked = []
    for path in paths:
        try:
            found = (
                subprocess.run(
                    ["git", "ls-files", "--error-unmatch", path.name], cwd=path.parent, capture_output=True, text=True
                ).returncode
                == 0
            )
        except (OSError, ValueError):
            found = False
        if found:
            tracked.append(path)
    return tracked


if __name__ == "__main__":
    main()
