"""Forecasting data: shipped series, windows, train-only scaling and baselines computed by hand."""

import math
import socket

import numpy as np
import pytest

from lstmlab import data
from lstmlab.data import series

# A hand-made series: a 3-step pattern (0, 2, 4) plus a trend of 1 per season.
HAND = [10, 12, 14, 11, 13, 15, 12, 14, 16, 13, 15, 17, 14, 16, 18, 15, 17, 19, 16, 18]


def _write_csv(path, values, column="y"):
    path.write_text(f"t,{column}\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    return str(path)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_sunspots_loads_offline_309_years(no_network):
    ds = data.build("sunspots", seq_len=20, horizon=1)
    assert len(ds.series) == 309 and ds.time[0] == 1700 and ds.time[-1] == 2008
    assert ds.spec.kind == "regress" and ds.spec.output_size == 1 and ds.spec.info["season"] == 11
    n_test = n_val = round(309 * 0.15)
    assert ds.train_end == 309 - n_val - n_test and ds.val_end == 309 - n_test
    assert len(ds.starts["test"]) == n_test and len(ds.starts["train"]) == ds.train_end - 20
    batch = ds.train_batch(0)
    assert batch["inputs"].shape == (32, 20, 1) and batch["targets"].shape == (32, 1)


def test_airline_loads_offline_144_months(no_network):
    ds = data.build("airline", horizon=3, batch_size=4)
    assert len(ds.series) == 144 and ds.series[0] == 112 and ds.series[-1] == 432
    assert ds.time[12] == 1950.0 and ds.spec.info["season"] == 12 and ds.spec.output_size == 3


def test_windows_read_seq_len_values_and_predict_the_next_horizon(tmp_path):
    ds = data.build(
        "csv",
        path=_write_csv(tmp_path / "s.csv", HAND),
        column="y",
        seq_len=2,
        horizon=2,
        season=3,
        val_fraction=0.25,
        test_fraction=0.25,
        batch_size=3,
        residual=False,
    )
    assert (ds.train_end, ds.val_end) == (10, 15)
    assert ds.starts["train"].tolist() == [3, 4, 5, 6, 7, 8]  # t >= max(seq_len, season), t + 2 <= 10
    assert ds.starts["val"].tolist() == [10, 11, 12, 13]
    assert ds.starts["test"].tolist() == [15, 16, 17, 18]
    batch = next(ds.eval_batches("val"))
    assert np.allclose(ds.unscale(batch["inputs"][..., 0]), [[16, 13], [13, 15], [15, 17]])  # x[t-2], x[t-1]
    assert np.allclose(ds.unscale(batch["targets"]), [[15, 17], [17, 14], [14, 16]])  # x[t], x[t+1]
    last = list(ds.eval_batches("val"))[-1]
    assert last["weights"].tolist() == [1, 0, 0]


def test_baselines_and_skill_match_a_hand_computation(tmp_path):
    ds = data.build(
        "csv",
        path=_write_csv(tmp_path / "s.csv", HAND),
        column="y",
        seq_len=2,
        horizon=2,
        season=3,
        val_fraction=0.25,
        test_fraction=0.25,
        batch_size=3,
        residual=False,
    )
    batches = list(ds.eval_batches("test"))
    # test windows t = 15..18 forecast (x[t], x[t+1]): (15,17) (17,19) (19,16) (16,18)
    # persistence x[t-1] = 18, 15, 17, 19 -> errors -3,-1 | 2,4 | 2,-1 | -3,-1
    persistence_rmse = math.sqrt((9 + 1 + 4 + 16 + 4 + 1 + 9 + 1) / 8)
    persistence_mae = (3 + 1 + 2 + 4 + 2 + 1 + 3 + 1) / 8
    # seasonal naive x[t-3], x[t-2] = (14,16) (16,18) (18,15) (15,17): one below the truth each time
    truth = np.array([[15, 17], [17, 19], [19, 16], [16, 18]], float)
    mean, std = np.mean(HAND[:10]), np.std(HAND[:10])  # scaler of the training part
    forecast = truth + 2.0  # the model is 2 too high
    outputs = np.concatenate([(forecast - mean) / std, np.full((2, 2), 99.0)])  # 2 filler rows
    m = ds.extra_metrics("test", outputs, batches)
    assert m["persistence_rmse"] == pytest.approx(persistence_rmse)
    assert m["persistence_mae"] == pytest.approx(persistence_mae)
    assert m["seasonal_rmse"] == pytest.approx(1.0) and m["seasonal_mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(2.0) and m["mae"] == pytest.approx(2.0)
    assert m["skill"] == pytest.approx(1 - 2.0 / persistence_rmse)
    assert m["seasonal_skill"] == pytest.approx(1 - 2.0 / 1.0)  # twice the seasonal-naive error
    arrays = ds.forecast_arrays("test", outputs, batches, step=1)
    assert arrays["time"].tolist() == [16, 17, 18, 19]
    assert np.allclose(arrays["truth"], truth[:, 1]) and np.allclose(arrays["forecast"], truth[:, 1] + 2)
    assert arrays["persistence"].tolist() == [18, 15, 17, 19] and arrays["seasonal"].tolist() == [16, 18, 15, 17]


def test_seasonal_naive_repeats_the_last_season_beyond_one_season():
    x = np.arange(10.0)
    got = series.seasonal_naive_forecast(x, np.array([6]), horizon=5, season=2)
    assert got.tolist() == [[4, 5, 4, 5, 4]]  # x[4], x[5] and again: only observed values


@pytest.mark.parametrize("residual", [False, True])
def test_scaler_is_fitted_on_the_training_part_only(tmp_path, residual):
    changed = HAND[:15] + [100, -50, 7, 300, 0]  # only the test part differs
    kw = dict(
        column="y",
        seq_len=2,
        horizon=2,
        season=3,
        val_fraction=0.25,
        test_fraction=0.25,
        batch_size=3,
        residual=residual,
    )
    a = data.build("csv", path=_write_csv(tmp_path / "a.csv", HAND), **kw)
    b = data.build("csv", path=_write_csv(tmp_path / "b.csv", changed), **kw)
    assert (a.mean, a.std) == (b.mean, b.std)
    # levels: the training part's standard deviation; changes (residual): their root mean square
    scale = np.sqrt(np.mean(np.diff(HAND[:10]) ** 2)) if residual else np.std(HAND[:10])
    assert a.mean == pytest.approx(np.mean(HAND[:10])) and a.std == pytest.approx(scale)
    assert all(np.array_equal(a.train_batch(s)["inputs"], b.train_batch(s)["inputs"]) for s in range(3))
    assert not np.array_equal(next(a.eval_batches("test"))["targets"], next(b.eval_batches("test"))["targets"])


def test_train_batches_are_pure_in_seed_and_step():
    a, b = data.build("sunspots", seed=1, batch_size=8), data.build("sunspots", seed=1, batch_size=8)
    c = data.build("sunspots", seed=2, batch_size=8)
    assert np.array_equal(a.train_batch(7)["inputs"], b.train_batch(7)["inputs"])
    assert not np.array_equal(a.train_batch(7)["inputs"], a.train_batch(8)["inputs"])
    assert not np.array_equal(a.train_batch(7)["inputs"], c.train_batch(7)["inputs"])


def test_log_transform_keeps_metrics_in_original_units():
    ds = data.build("airline", log=True, batch_size=16)
    batches = list(ds.eval_batches("test"))
    perfect = np.concatenate([b["targets"] for b in batches])
    m = ds.extra_metrics("test", perfect, batches)
    assert m["rmse"] == pytest.approx(0.0, abs=1e-3) and m["persistence_rmse"] > 10  # passengers


def test_sines_are_seeded_and_repeat_every_season_without_noise():
    a = data.build("sines", seed=1, length=300, noise=0.0)
    assert a.season == 60
    assert np.allclose(a.series[60:], a.series[:-60])
    assert not np.allclose(a.series, data.build("sines", seed=2, length=300, noise=0.0).series)


def test_mackey_glass_solves_the_delay_equation():
    dt, tau = 0.1, 17.0
    x = series.mackey_glass_series(0, 3000, tau=tau, dt=dt, sample_every=dt, washout=200)
    lag = round(tau / dt)
    i = np.arange(lag + 1, len(x) - 1)
    slope = (x[i + 1] - x[i - 1]) / (2 * dt)  # central difference
    rhs = 0.2 * x[i - lag] / (1 + x[i - lag] ** 10) - 0.1 * x[i]
    assert np.max(np.abs(slope - rhs)) < 1e-3
    assert 0.2 < x.min() and x.max() < 1.5  # the familiar tau = 17 attractor
    coarse = series.mackey_glass_series(0, 100, dt=0.1, washout=50)
    fine = series.mackey_glass_series(0, 100, dt=0.05, washout=50)
    assert np.max(np.abs(coarse - fine)) < 1e-3  # converged in the step size
    ds = data.build("mackey_glass", seed=3, length=400)
    assert np.array_equal(ds.series, data.build("mackey_glass", seed=3, length=400).series)
    assert not np.allclose(ds.series, data.build("mackey_glass", seed=4, length=400).series)


def test_csv_errors_name_the_file_and_what_is_valid(tmp_path):
    good = _write_csv(tmp_path / "g.csv", HAND, column="sales")
    cases = [
        (dict(path=str(tmp_path / "missing.csv"), column="y"), "missing.csv.*no such file"),
        (dict(path=good, column="price"), r"data.column='price' is not a column of .*g.csv; valid: t, sales"),
        (dict(path=good), "data.column=None .*valid: t, sales"),
        (dict(column="y"), "data.path is required"),
        (dict(path=good, column="sales", seq_len=19), "no window with data.seq_len=19"),
        (dict(path=good, column="sales", val_fraction=0.6, test_fraction=0.5), "must be < 1"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("t,y\n0,1.5\n1,abc\n2,3\n")
    cases.append((dict(path=str(bad), column="y"), r"bad.csv line 3, column 'y': 'abc' is not a finite number"))
    nan = tmp_path / "nan.csv"
    nan.write_text("t,y\n0,1.5\n1,nan\n2,3\n")
    cases.append((dict(path=str(nan), column="y"), "nan.csv line 3"))
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            data.build("csv", **kwargs)
        assert "\n" not in str(err.value)


def test_plot_forecast_writes_a_png(tmp_path):
    from lstmlab.io.plots_forecast import plot_forecast

    t = np.arange(5.0)
    plot_forecast(
        str(tmp_path / "forecast.png"), {"time": t, "truth": t, "forecast": t + 1, "persistence": t - 1}, title="test"
    )
    assert (tmp_path / "forecast.png").read_bytes()[:4] == b"\x89PNG"


def test_residual_windows_are_relative_to_the_last_input_and_zero_change_is_persistence(tmp_path):
    kw = dict(
        path=_write_csv(tmp_path / "s.csv", HAND),
        column="y",
        seq_len=2,
        horizon=2,
        season=3,
        val_fraction=0.25,
        test_fraction=0.25,
        batch_size=3,
    )
    plain, residual = data.build("csv", residual=False, **kw), data.build("csv", **kw)  # residual: default
    a, b = next(plain.eval_batches("val")), next(residual.eval_batches("val"))
    last = a["inputs"][:, -1, :]  # (B, 1) standardised x[t-1]
    rescale = plain.std / residual.std  # level scale -> change scale
    assert np.allclose(b["inputs"], (a["inputs"] - last[:, None, :]) * rescale)
    assert np.allclose(b["targets"], (a["targets"] - last) * rescale) and np.all(b["inputs"][:, -1] == 0)
    batches = list(residual.eval_batches("test"))
    zeros = [np.zeros((len(x["weights"]), 2), np.float32) for x in batches]
    m = residual.extra_metrics("test", zeros, batches)  # "no change" is persistence
    assert m["rmse"] == pytest.approx(m["persistence_rmse"]) and m["skill"] == pytest.approx(0.0, abs=1e-6)
    exact = [x["targets"] for x in batches]
    assert residual.extra_metrics("test", exact, batches)["rmse"] == pytest.approx(0.0, abs=1e-4)


def test_metrics_and_plot_cover_the_first_batches_when_evaluation_stops_early(tmp_path):
    ds = data.build(
        "csv",
        path=_write_csv(tmp_path / "s.csv", HAND),
        column="y",
        seq_len=2,
        horizon=1,
        season=3,
        val_fraction=0.25,
        test_fraction=0.25,
        batch_size=3,
    )
    first = [next(ds.eval_batches("test"))]  # 3 of the 5 test windows
    m = ds.extra_metrics("test", [first[0]["targets"]], first)
    assert m["rmse"] == pytest.approx(0.0, abs=1e-4)
    assert ds.forecast_arrays("test", [first[0]["targets"]], first)["time"].tolist() == [15, 16, 17]
    from lstmlab.tasks import task_for

    paths = task_for(ds.spec).plots(ds, "test", [first[0]["targets"]], first, tmp_path / "plots")
    assert paths == {"forecast": tmp_path / "plots" / "forecast.png"} and paths["forecast"].stat().st_size > 1000


def test_a_csv_time_column_is_parsed_and_an_unsorted_file_is_read_in_file_order_only_when_asked(tmp_path):
    from lstmlab.data.series import read_csv_time

    path = tmp_path / "monthly.csv"
    path.write_text("month,sales\n2024-03,3\n2024-01,1\n2024-02,2\n")
    with pytest.raises(ValueError, match=r"line 3, column 'month': '2024-01' comes before the time of the line"):
        read_csv_time(str(path), "sales", None)
    values, times = read_csv_time(str(path), "sales", "")
    assert values.tolist() == [3.0, 1.0, 2.0] and times is None
    path.write_text("month,sales\n2024-01,1\n2024-02,2\n2024-03,3\n")
    values, times = read_csv_time(str(path), "sales", None)
    assert values.tolist() == [1.0, 2.0, 3.0] and str(times[0]).startswith("2024-01-01")
