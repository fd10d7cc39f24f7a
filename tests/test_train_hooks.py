"""The loop's extension points from Python: extra hooks, ``on_evaluate``, and the stop exceptions the
library raises instead of exiting."""

from __future__ import annotations

import json
import os
import signal

import pytest
from test_train_loop import tiny_config

from lstmlab.io.checkpoint import Checkpointer
from lstmlab.train import Every, Hook, Preempted, Step, train_and_evaluate


class StepCount(Every):
    """Adds ``extra/step`` to the record every other step."""

    every = 2

    def __init__(self):
        self.finished = None

    def __call__(self, step: Step) -> None:
        step.record["extra/step"] = float(step.number)

    def finish(self, state, summary) -> None:
        self.finished = summary["step"]
        summary["extra/finished"] = True


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_extra_hooks_log_with_the_step_and_on_evaluate_sees_the_val_metrics(tmp_path):
    hook, seen = StepCount(), []
    assert isinstance(hook, Hook)
    summary = train_and_evaluate(
        tiny_config(6), tmp_path, hooks=[hook], on_evaluate=lambda step, metrics: seen.append((step, metrics))
    )
    assert [r["extra/step"] for r in records(tmp_path) if "extra/step" in r] == [2.0, 4.0, 6.0]
    assert hook.finished == 6 and summary["extra/finished"] is True
    assert [step for step, _ in seen] == [3, 6]
    logged = {r["step"]: r for r in records(tmp_path)}
    for step, metrics in seen:
        assert {"val/loss", "val/bpc", "val/accuracy"} <= set(metrics)
        assert all(logged[step][k] == v for k, v in metrics.items())


class Pruned(Exception):
    pass


def test_what_on_evaluate_raises_ends_the_run_after_the_step_is_saved(tmp_path):
    def prune(step, metrics):
        raise Pruned(step)

    config = tiny_config(6)
    config.checkpoint.every = 1
    with pytest.raises(Pruned):
        train_and_evaluate(config, tmp_path, on_evaluate=prune)
    assert Checkpointer(tmp_path / "checkpoints", read_only=True).latest_step() == 3
    assert records(tmp_path)[-1]["step"] == 3 and not (tmp_path / "summary.json").exists()


class SignalAt(Every):
    def __init__(self, at: int, sig: int):
        self.every, self.sig = at, sig

    def __call__(self, step: Step) -> None:
        if step.number == self.every:
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_step_and_raises_preempted(tmp_path, sig):
    previous = signal.getsignal(sig)
    with pytest.raises(Preempted) as stopped:
        train_and_evaluate(tiny_config(10), tmp_path, hooks=[SignalAt(4, sig)])
    # the signal arrives during step 4's hooks; the loop sees it after step 5
    assert stopped.value.signum == sig and stopped.value.step == 5
    assert f"{signal.Signals(sig).name} received; saved checkpoint at step 5" in str(stopped.value)
    assert Checkpointer(tmp_path / "checkpoints", read_only=True).latest_step() == 5
    assert records(tmp_path)[-1]["step"] == 5
    assert signal.getsignal(sig) is previous  # the loop's handlers are gone again


def test_the_hooks_fetch_from_the_device_once_per_logged_step(tmp_path, monkeypatch):
    """The log interval's metrics and the non-finite counters come over in one transfer; evaluation
    and checkpoints at the same step reuse the counters."""
    import jax

    from lstmlab.train import hooks

    class CountingJax:
        calls = 0

        def __getattr__(self, name):
            return getattr(jax, name)

        def device_get(self, tree):
            CountingJax.calls += 1
            return jax.device_get(tree)

    monkeypatch.setattr(hooks, "jax", CountingJax())
    config = tiny_config(6)
    config.trainer.eval_every, config.checkpoint.every, config.sample.enabled = 2, 1, False
    train_and_evaluate(config, tmp_path)
    assert CountingJax.calls == 6  # log_every=1: one per step, with evaluations and saves at steps 2, 4, 6
