"""Text generation from a per-step model, as one jitted ``lax.scan`` (no Python call per character)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array


def choose(logits: Array, key: Array, temperature: float, top_k: int) -> Array:
    """Next token ids (B,) from logits (B, V): argmax at temperature 0, otherwise a draw from
    softmax(logits / temperature), restricted to the ``top_k`` most likely tokens when top_k > 0."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1)


def generate(
    model: nnx.Module,
    prime: np.ndarray,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    key: Array | None = None,
) -> np.ndarray:
    """Feed the token ids ``prime`` (P,) to ``model`` (a per-step :class:`RecurrentModel`), then draw
    ``length`` tokens, each fed back as the next input. Returns the drawn ids (length,) int32."""
    if len(prime) < 1:
        raise ValueError("sampling needs a prime of at least one token")
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    graphdef, state = nnx.split(model)
    key = jax.random.PRNGKey(0) if key is None else key
    return np.asarray(
        _generate(graphdef, state, jnp.asarray(prime, jnp.int32), key, int(length), float(temperature), int(top_k))
    )


@partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _generate(graphdef, state, prime, key, length, temperature, top_k):
    model = nnx.merge(graphdef, state)
    carries, logits = model(prime[None, :], model.initial_carries(1))

    def body(loop, _):
        carries, last_logits, key = loop
        key, sub = jax.random.split(key)
        token = choose(last_logits, sub, temperature, top_k)
        carries, logits = model.step(carries, token)
        return (carries, logits, key), token[0]

    _, tokens = jax.lax.scan(body, (carries, logits[:, -1], key), None, length=length)
    return tokens


def load_model(run_dir, checkpoint: str = "latest"):
    """(config, model with restored parameters, checkpoint meta) of a run directory.

    ``checkpoint``: ``latest`` (the newest that reads back whole: a damaged newer one is passed over, as
    training does, and named in ``meta["passed_over"]``), ``best`` (lowest validation loss) or a step
    number. ValueError (one line) for a run directory whose ``config.yaml`` cannot be read back or a
    checkpoint asked for by step that is damaged, FileNotFoundError for one without a good checkpoint."""
    from lstmlab.data import DataSpec
    from lstmlab.io.checkpoint import Checkpointer, DamagedCheckpointError, unflatten
    from lstmlab.io.rundir import RunDir
    from lstmlab.train.setup import build_model

    rundir = RunDir(run_dir)
    config = rundir.load_config()
    ckpt = Checkpointer(rundir.checkpoints, read_only=True)
    try:
        steps = ckpt.steps()
        if not steps:
            raise FileNotFoundError(f"{rundir.checkpoints} holds no checkpoint")
        if checkpoint == "latest":
            step, flat, meta, damaged = ckpt.read_latest_good()
            if step is None:
                raise FileNotFoundError(
                    f"{rundir.checkpoints}: every checkpoint is damaged ({'; '.join(damaged.values())})"
                )
            meta = {**meta, "passed_over": {str(s): reason for s, reason in damaged.items()}}
        else:
            step = (ckpt.best_step() or steps[-1]) if checkpoint == "best" else None
            if step is None and checkpoint.isdigit() and int(checkpoint) in steps:
                step = int(checkpoint)
            if step is None:
                raise ValueError(f"--checkpoint={checkpoint!r}; valid: latest, best, or one of {steps}")
            try:
                flat, meta = ckpt.read(step)
            except DamagedCheckpointError as err:
                raise ValueError(f"{err}; valid: --checkpoint latest, which passes over damaged ones") from None
    finally:
        ckpt.close()
    sig = meta["model"]
    spec = DataSpec(
        kind=sig["kind"], output_size=sig["output_size"], vocab_size=sig["vocab_size"], input_size=sig["input_size"]
    )
    graphdef, params = nnx.split(build_model(config, spec))
    flat = {key[len("params.") :]: value for key, value in flat.items() if key.startswith("params.")}
    params = unflatten(params, flat, f"checkpoint {rundir.checkpoints / str(step)}")
    return config, nnx.merge(graphdef, params), meta
