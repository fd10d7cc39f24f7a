"""A cell defined here, outside lstmlab, registered with ``cells.register``: it runs through every
public function (init, carry, step, scan with impl reference and fast, remat) and through the NNX layers,
with its options passed through by name, and its hand-written backward agrees with autodiff; the command
line selects it once ``imports=`` names a module that registers it (``tests/register_mgu.py``)."""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lstmlab import cells
from lstmlab.cells.base import Cell, matmul_tn
from lstmlab.nn import Recurrent, RecurrentStack

T, B, D, H = 5, 3, 2, 4
LENGTHS = jnp.array([5, 2, 0])


class MGU(Cell):
    """Minimal gated unit (Zhou et al. 2016) in reset-after form, with a scaled candidate::

    [a_f, a_n] = x_t @ w_i + b,   [u_f, u_n] = h @ w_h
    f = sigmoid(a_f + u_f),       n = scale * tanh(a_n + f * u_n)
    h_t = (1 - f) * h + f * n
    """

    num_gates = 2
    input_bias = "b"
    options = {"scale": 1.0}

    def check_options(self, scale: float = 1.0) -> dict[str, Any]:
        if not scale > 0:
            raise ValueError(f"scale={scale!r} must be > 0")
        return {"scale": float(scale)}

    def init(self, key, input_size, hidden_size, how, scale=1.0):
        k_i, k_h = jax.random.split(key)
        return {
            "w_i": 0.5 * jax.random.normal(k_i, (input_size, 2 * hidden_size), how.dtype),
            "w_h": 0.5 * jax.random.normal(k_h, (hidden_size, 2 * hidden_size), how.dtype),
            "b": jnp.zeros((2 * hidden_size,), how.dtype),
        }

    def forward(self, params, xp, h, *, scale=1.0):
        a_f, a_n = jnp.split(xp, 2, axis=-1)
        u_f, u_n = jnp.split(h @ params["w_h"], 2, axis=-1)
        f = jax.nn.sigmoid(a_f + u_f)
        t = jnp.tanh(a_n + f * u_n)
        n = scale * t
        return (1 - f) * h + f * n, (f, t, u_n)

    def backward(self, params, saved, h_prev, h, state, d_carry, dh, *, scale=1.0):
        f, t, u_n = saved
        dh_t = d_carry + dh
        dn = dh_t * f * scale * (1 - t * t)
        dz_f = (dh_t * (scale * t - h_prev) + dn * u_n) * f * (1 - f)
        du = jnp.concatenate([dz_f, dn * f], axis=-1)
        return (du, dn), dh_t * (1 - f) + du @ params["w_h.T"], None

    def grads(self, params, dzs, saveds, h_prevs, final_carry, *, scale=1.0):
        du, dn = dzs
        return jnp.concatenate([du[..., : h_prevs.shape[-1]], dn], axis=-1), {"w_h": matmul_tn(h_prevs, du)}


@pytest.fixture(autouse=True)
def mgu():
    cells.register("mgu", MGU())
    yield
    cells.unregister("mgu")


def test_registered_cell_is_listed_with_its_gates_and_options():
    assert "mgu" in cells.CELLS
    assert cells.num_gates("mgu") == 2
    assert cells.option_names("mgu") == ("scale",)
    assert cells.cell_options("mgu") == {"scale": 1.0}
    assert cells.has_fast_path("mgu")
    with pytest.raises(ValueError, match="takes no option 'variant'; valid: scale"):
        cells.cell_options("mgu", variant="NIG")
    with pytest.raises(ValueError, match="already registered"):
        cells.register("mgu", MGU())
    with pytest.raises(TypeError, match="lacks"):
        cells.register("not_a_cell", object())
    cells.unregister("mgu")
    assert "mgu" not in cells.CELLS
    with pytest.raises(ValueError, match="is not a cell"):
        cells.init("mgu", jax.random.key(0), D, H)
    cells.register("mgu", MGU())


def test_step_equals_numpy_equations():
    params = cells.init("mgu", jax.random.key(0), D, H, scale=0.7)
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((B, D)), rng.standard_normal((B, H))
    new, out = cells.step("mgu", params, jnp.asarray(h, jnp.float32), jnp.asarray(x, jnp.float32), scale=0.7)
    w_i, w_h, b = (np.asarray(params[k], np.float64) for k in ("w_i", "w_h", "b"))
    a, u = x @ w_i + b, h @ w_h
    f = 1 / (1 + np.exp(-(a[:, :H] + u[:, :H])))
    want = (1 - f) * h + f * 0.7 * np.tanh(a[:, H:] + f * u[:, H:])
    np.testing.assert_allclose(new, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def _value_and_grads(impl, seq_lengths=None, reverse=False, remat_chunk=None):
    params = cells.init("mgu", jax.random.key(0), D, H, scale=0.7)
    xs = jax.random.normal(jax.random.key(1), (T, B, D))
    h0 = 0.5 * jax.random.normal(jax.random.key(2), (B, H))
    w_out = jax.random.normal(jax.random.key(3), (T, B, H))

    def loss(params, xs, h0):
        final, hs = cells.scan(
            "mgu",
            params,
            xs,
            h0,
            seq_lengths=seq_lengths,
            reverse=reverse,
            impl=impl,
            remat_chunk=remat_chunk,
            scale=0.7,
        )
        return jnp.sum(hs * w_out) + jnp.sum(jnp.tanh(final))

    program = str(jax.make_jaxpr(loss)(params, xs, h0))
    return "custom_vjp" in program, jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(params, xs, h0)


@pytest.mark.parametrize("mode", [{}, {"seq_lengths": LENGTHS, "reverse": True}, {"remat_chunk": 2}])
def test_fast_backward_of_a_registered_cell_matches_autodiff(mode):
    uses_fast, (v_fast, g_fast) = _value_and_grads("fast", **mode)
    uses_ref, (v_ref, g_ref) = _value_and_grads("reference", **mode)
    assert uses_fast and not uses_ref
    np.testing.assert_allclose(v_fast, v_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
        assert float(jnp.max(jnp.abs(b))) > 1e-3
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_registered_cell_runs_in_the_nnx_layers_with_its_options():
    layer = Recurrent("mgu", D, H, rngs=nnx.Rngs(0), scale=0.5)
    assert layer.options == {"scale": 0.5}
    xs = jax.random.normal(jax.random.key(1), (T, B, D))
    final, hs = layer(xs)
    want_final, want_hs = cells.scan("mgu", layer.cell_params(), xs, scale=0.5)
    np.testing.assert_allclose(hs, want_hs, rtol=1e-6)
    np.testing.assert_allclose(final, want_final, rtol=1e-6)

    def loss(m):
        _, hs = m(xs, seq_lengths=LENGTHS)
        return jnp.sum(jnp.sin(hs))

    grads = {}
    for impl in ("fast", "reference"):
        stack = RecurrentStack("mgu", D, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0), impl=impl, scale=0.5)
        grads[impl] = nnx.value_and_grad(loss)(stack)
    assert grads["fast"][1]["layers"][0]["forward"]["w_h"][...].shape == (H, 2 * H)
    np.testing.assert_allclose(grads["fast"][0], grads["reference"][0], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads["fast"][1]), jax.tree.leaves(grads["reference"][1])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_registered_cell_trains_through_the_config_and_training_api(tmp_path):
    """cell.name picks the registered cell and cell.extra carries its options, with no edit to lstmlab."""
    import json

    from lstmlab.cli import compose
    from lstmlab.train import train_and_evaluate

    overrides = [
        "+preset=tiny",
        "logger.wandb.mode=disabled",
        "trainer.progress=none",
        "data.val_size=32",
        "data.test_size=32",
        "data.seq_len=10",
        "cell.name=mgu",
        "+cell.extra.scale=0.5",
    ]
    config = compose("adding", overrides)
    assert config.cell.options() == {"scale": 0.5}
    summary = train_and_evaluate(config, tmp_path / "run")
    assert summary["step"] == config.trainer.max_steps
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert np.isfinite(saved["test/loss"])
    bad = compose("adding", [*overrides[:-1], "+cell.extra.shape=2"])
    with pytest.raises(Exception, match="shape"):
        bad.check()


def test_registered_cell_trains_through_the_command_line_once_imports_names_its_module(tmp_path, capsys):
    """``+imports=[register_mgu]`` imports the module that registers the cell before the config is
    checked, so ``cell.name=mgu`` trains from the command line (in this process); a module that cannot
    be imported is one line and exit status 2, with no run directory made."""
    import json

    import yaml

    from lstmlab import cli

    args = ["+experiment=adding", "+preset=tiny", "logger.wandb.mode=disabled", "trainer.progress=none"]
    args += ["data.val_size=32", "data.test_size=32", "data.seq_len=10", "cell.name=mgu", "+cell.extra.scale=0.5"]
    cells.unregister("mgu")  # registered by the fixture; the imported module registers it again
    sys.modules.pop("register_mgu", None)
    cli.main([*args, "+imports=[register_mgu]", f"hydra.run.dir={tmp_path / 'run'}"])
    assert "mgu" in cells.CELLS
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["imports"] == ["register_mgu"] and saved["cell"]["name"] == "mgu"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == saved["trainer"]["max_steps"] and np.isfinite(summary["test/loss"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        cli.main([*args, "+imports=[no_such_module_here]", f"hydra.run.dir={tmp_path / 'bad'}"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "imports: cannot import 'no_such_module_here'" in err
    assert not (tmp_path / "bad").exists()
