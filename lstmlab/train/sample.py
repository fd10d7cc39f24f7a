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

    ``checkpoint``: ``latest``, ``best`` (lowest validation loss) or a step number. ValueError (one
    line) for a run directory whose ``config.yaml`` cannot be read back, FileNotFoundError for one
    without checkpoints."""
    from lstmlab.data import DataSpec
    from lstmlab.io.checkpoint import Checkpointer
    from lstmlab.io.rundir import RunDir
    from lstmlab.train.setup import build_model

    rundir = RunDir(run_dir)
    config = rundir.load_config()
    ckpt = Checkpointer(rundir.checkpoints, read_only=True)
    steps = ckpt.steps()
    if not steps:
        raise FileNotFoundError(f"{rundir.checkpoints} holds no checkpoint")
    if checkpoint == "latest":
        step = steps[-1]
    elif checkpoint == "best":
        step = ckpt.best_step() or steps[-1]
    elif checkpoint.isdigit() and int(checkpoint) in steps:
        step = int(checkpoint)
    else:
        raise ValueError(f"--checkpoint={checkpoint!r}; valid: latest, best, or one of {steps}")
    meta = ckpt.read_meta(step)
    sig = meta["model"]
    spec = DataSpec(
        kind=sig["kind"], output_size=sig["output_size"], vocab_size=sig["vocab_size"], input_size=sig["input_size"]
    )
    model = build_model(config, spec)
    graphdef, params = nnx.split(model)
    params = ckpt.restore_params(step, params)
    ckpt.close()
    return config, nnx.merge(graphdef, params), meta
