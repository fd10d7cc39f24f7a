"""``model.param_budget`` fits the hidden size by counting the model itself (``lstmlab.train.param_count``
on the abstract model): for every shipped experiment that count is the number of parameters the
initialised model has."""

from __future__ import annotations

import math

import jax
import pytest
from flax import nnx

from lstmlab.cli import conf_dir

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_budget_s_count_is_the_initialised_model_s(experiment):
    from lstmlab.cli import compose
    from lstmlab.train import build_dataset, build_model, param_count
    from lstmlab.train.setup import apply_param_budget

    config = compose(experiment)
    spec = build_dataset(config).spec
    apply_param_budget(config, spec)
    built = build_model(config, spec)
    initialised = sum(math.prod(a.shape) for a in jax.tree.leaves(nnx.state(built, nnx.Param)))
    assert param_count(config, spec) == initialised > 0
    if config.model.param_budget is not None:
        assert initialised <= config.model.param_budget < param_count(config, spec, config.model.hidden_size + 1)
