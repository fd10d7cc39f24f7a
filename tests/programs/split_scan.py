"""Run by tests/test_cells_sharding.py in a process started with 2 simulated CPU devices (the device
count is fixed when JAX starts): ``cells.scan(..., batch_axis="data")`` under ``jax.set_mesh`` gives the
values and gradients of the unsplit scan for every kernel and option, and splits only when asked, on an
axis that exists and divides the batch. Prints ``ok``; an assertion fails otherwise."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lstmlab import cells
from lstmlab.nn import Recurrent

assert len(jax.devices()) == 2, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("data",))
T, D, H = 5, 3, 6
lengths = jnp.array([5, 2, 4, 1])
CASES = [  # cell, options, impl, seq_lengths, reverse, remat_chunk
    ("lstm", {}, "fast", None, False, None),
    ("lstm", {}, "fast", lengths, True, None),
    ("lstm", {}, "reference", lengths, False, None),
    ("lstm", {}, "fast", lengths, False, 2),
    ("peephole", {"variant": "CIFG"}, "fast", lengths, True, None),
    ("gru", {}, "fast", lengths, False, None),
    ("rnn", {"activation": "relu"}, "fast", None, True, None),
    ("lstm", {"variant": "FGR"}, "fast", lengths, False, None),
]


def value_and_grads(name, opts, impl, sl, rev, remat, B, axis):
    params = cells.init(name, jax.random.key(1), D, H, **opts)
    carry = jax.tree.map(lambda a: a + 0.1, cells.initial_carry(name, B, H, **opts))
    xs = jax.random.normal(jax.random.key(0), (T, B, D))
    sl = None if sl is None else sl[:B]

    def loss(params, carry, xs):
        c, hs = cells.scan(
            name, params, xs, carry, seq_lengths=sl, reverse=rev, impl=impl, remat_chunk=remat, batch_axis=axis, **opts
        )
        return (hs**2).sum() + sum((leaf**2).sum() for leaf in jax.tree.leaves(c)), (c, hs)

    f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
    split = "sdy.manual_computation" in f.lower(params, carry, xs).as_text()
    xs = jax.device_put(xs, NamedSharding(mesh, P(None, "data"))) if axis and B % 2 == 0 else xs
    return split, jax.tree.leaves(f(params, carry, xs))


def layer_split(**kwargs):
    layer = Recurrent("lstm", D, H, rngs=nnx.Rngs(0), **kwargs)
    with jax.set_mesh(mesh):
        return "sdy.manual_computation" in jax.jit(lambda x: layer(x)[1]).lower(jnp.ones((T, 4, D))).as_text()


worst = 0.0
for case in CASES:
    _, want = value_and_grads(*case, B=4, axis=None)
    with jax.set_mesh(mesh):
        split, got = value_and_grads(*case, B=4, axis="data")
    assert split, f"{case}: the scan was not split over the devices"
    assert len(got) == len(want)
    worst = max(worst, max(float(jnp.abs(a - b).max() / (1 + jnp.abs(b).max())) for a, b in zip(got, want)))
print(f"worst relative difference {worst:.2e}")
assert worst < 1e-5, worst

with jax.set_mesh(mesh):
    assert not value_and_grads("lstm", {}, "fast", None, False, None, B=3, axis="data")[0], "B=3 was split"
    assert not value_and_grads("lstm", {}, "fast", None, False, None, B=4, axis="model")[0], "no such axis"
assert not value_and_grads("lstm", {}, "fast", None, False, None, B=4, axis="data")[0], "split without a mesh"
with jax.set_mesh(mesh):  # only an explicit batch_axis splits, never the ambient mesh by itself
    assert not value_and_grads("lstm", {}, "fast", None, False, None, B=4, axis=None)[0], "split by default"

assert not layer_split(), "the layer split the batch without batch_axis"
assert layer_split(batch_axis="data"), "the layer did not split with batch_axis='data'"
print("ok")
