"""Univariate forecasting: ``sunspots``, ``airline``, ``sines``, ``mackey_glass`` and ``csv``.

A series x (N,) is split in time: the first part trains, then validation, then test (``val_fraction``,
``test_fraction`` of the values). Values are standardised with the mean and standard deviation of
the training part only (after ``log`` if set). A window whose first forecast step is t reads the
``seq_len`` values x[t - seq_len : t] (the model's input length, often called the lookback) and
predicts the ``horizon`` values x[t : t + horizon]; a window belongs to the split that holds all its
targets (its inputs may reach back into the earlier split: those values are observed history).
Windows start at t >= max(seq_len, season), so both baselines below are defined on every window.

Batches: inputs (B, seq_len, 1) float32 and targets (B, horizon) float32, both scaled; kind
``regress`` with ``output_size = horizon``. With ``residual`` (the default) the window's last input
value is subtracted from its inputs and targets, so the model forecasts the change from persistence:
a series that leaves the training range, like a trend, stays in range, and predicting no change is
exactly the persistence baseline. The scale is then the root mean square of the training part's
one-step changes, so targets are of order 1 whether the series drifts or not; metrics add the last
value back. ``residual=false`` models standardised levels instead (mean and standard deviation of
the training part), which suits only series that stay in their training range.

``extra_metrics(split, outputs, batches)`` takes the model's standardised predictions (B, horizon)
per batch and returns, in the series' original units over all windows and horizon steps of the
split: ``rmse``, ``mae``, the persistence baseline (last observed value x[t-1] for every step)
``persistence_rmse``/``persistence_mae``, the seasonal-naive baseline (the value one season
earlier, x[t + k - season * (k // season + 1)] for step k) ``seasonal_rmse``/``seasonal_mae``, and
``skill`` = 1 - rmse / persistence_rmse and ``seasonal_skill`` = 1 - rmse / seasonal_rmse (above 0:
the model beats that baseline). :meth:`Forecast.forecast_arrays` gives the arrays for a
forecast plot, and :meth:`Forecast.plots` (called by the trainer after the final test evaluation)
writes ``forecast.png``.
"""

from __future__ import annotations

import csv as _csv
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np

from lstmlab.data import padded
from lstmlab.data.base import Batch, DataSpec
from lstmlab.data.registry import register


def chronological_split(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(train_end, val_end): train is [0, train_end), val [train_end, val_end), test [val_end, n)."""
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"data.{key}={value!r} must be between 0 and 1")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"data.val_fraction + data.test_fraction = {val_fraction + test_fraction} must be < 1")
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    return n - n_val - n_test, n - n_test


def persistence_forecast(series: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """(W, horizon): the last observed value x[t - 1] repeated, for windows starting at ``starts``."""
    return np.repeat(series[starts - 1][:, None], horizon, axis=1)


def seasonal_naive_forecast(series: np.ndarray, starts: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(W, horizon): step k forecasts x[t + k - season * (k // season + 1)], the value one season
    before, or whole seasons before when k >= season (always an observed value, index < t)."""
    k = np.arange(horizon)
    return series[starts[:, None] + k - season * (k // season + 1)]


class Forecast:
    """Forecasting windows over one series; see the module docstring.

    Args:
      series: (N,) values in original units. time: (N,) time stamps for plots (default 0..N-1).
      seq_len, horizon, season: window input length, forecast steps, seasonal-naive period (steps).
      log: model log(x) (x must be positive); metrics stay in original units.
      residual: inputs and targets relative to the window's last input value, scaled by the RMS of the
        training part's one-step changes (module docstring); False: standardised levels.
    """

    def __init__(
        self,
        series: np.ndarray,
        *,
        name: str,
        seed: int = 0,
        batch_size: int = 32,
        seq_len: int = 20,
        horizon: int = 1,
        season: int = 1,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        log: bool = False,
        residual: bool = True,
        time: np.ndarray | None = None,
        info: dict | None = None,
    ):
        self.series = np.asarray(series, np.float64)
        padded.check_magnitude(f"{name}: the values", self.series)
        self.seed = int(seed)
        self.batch_size = padded.check_positive("batch_size", batch_size)
        self.seq_len = padded.check_positive("seq_len", seq_len)
        self.horizon = padded.check_positive("horizon", horizon)
        self.season = padded.check_positive("season", season)
        self.time = np.arange(len(self.series)) if time is None else np.asarray(time)
        self.log = bool(log)
        self.residual = bool(residual)
        if self.log and np.any(self.series <= 0):
            raise ValueError(f"data.log=true needs positive values; {name} has min {self.series.min()}")
        self.train_end, self.val_end = chronological_split(len(self.series), val_fraction, test_fraction)
        bounds = {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, len(self.series)),
        }
        first = max(self.seq_len, self.season)
        self.starts = {s: np.arange(max(a, first), b - self.horizon + 1) for s, (a, b) in bounds.items()}
        for split, starts in self.starts.items():
            if len(starts) == 0:
                a, b = bounds[split]
                raise ValueError(
                    f"{name}: the {split} part (values {a}..{b - 1} of {len(self.series)}) holds no window with "
                    f"data.seq_len={self.seq_len}, data.horizon={self.horizon}, data.season={self.season}; "
                    "use a shorter seq_len/horizon/season or larger split fractions"
                )
        modelled = np.log(self.series) if self.log else self.series
        train = modelled[: self.train_end]  # the scaler sees the training part only
        self.mean, self.std = float(train.mean()), float(train.std())
        if self.residual and self.std > 0:  # the model sees changes: scale by their size
            self.std = float(np.sqrt(np.mean(np.diff(train) ** 2)))
        if not self.std > 0:
            raise ValueError(f"{name}: the training part is constant; nothing to forecast")
        self.scaled = ((modelled - self.mean) / self.std).astype(np.float32)
        self.spec = DataSpec(
            kind="regress",
            output_size=self.horizon,
            input_size=1,
            info={
                "series": name,
                "length": len(self.series),
                "seq_len": self.seq_len,
                "horizon": self.horizon,
                "season": self.season,
                "log": self.log,
                "residual": self.residual,
                "scaler_mean": self.mean,
                "scaler_std": self.std,
                **{f"{s}_windows": len(v) for s, v in self.starts.items()},
                **(info or {}),
            },
        )

    def _windows(self, starts: np.ndarray) -> Batch:
        idx = starts[:, None] + np.arange(-self.seq_len, 0)
        tgt = starts[:, None] + np.arange(self.horizon)
        base = self._base(starts)
        return {"inputs": (self.scaled[idx] - base)[..., None], "targets": self.scaled[tgt] - base}

    def _base(self, starts: np.ndarray) -> np.ndarray:
        """(W, 1) standardised value the windows are relative to: x[t - 1] with ``residual``, else 0."""
        if self.residual:
            return self.scaled[starts - 1][:, None]
        return np.zeros((len(starts), 1), np.float32)

    def train_batch(self, step: int) -> Batch:
        """Training windows in a seeded order per epoch; depends only on (seed, step)."""
        starts = self.starts["train"]
        return self._windows(starts[padded.epoch_indices(self.seed, step, self.batch_size, len(starts))])

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """All windows of ``split`` in time order; the last batch padded with ``weights`` 0."""
        padded.check_split(split)
        starts = self.starts[split]
        return padded.eval_batches(len(starts), self.batch_size, lambda idx: self._windows(starts[idx]))

    def unscale(self, values: np.ndarray) -> np.ndarray:
        """Standardised model values back to original units."""
        out = np.asarray(values, np.float64) * self.std + self.mean
        return np.exp(out) if self.log else out

    def _forecasts(self, split: str, outputs, batches: list[Batch]) -> dict[str, np.ndarray]:
        padded.check_split(split)
        pred, _ = padded.real_rows(outputs, batches)
        starts = self.starts[split][: len(pred)]  # fewer rows: the first batches (trainer.eval_max_batches)
        if pred.reshape(len(pred), -1).shape != (len(starts), self.horizon):
            raise ValueError(
                f"outputs for {split} must be at most {len(self.starts[split])} windows x horizon "
                f"{self.horizon}; got {pred.shape}"
            )
        k = np.arange(self.horizon)
        return {
            "starts": starts,
            "truth": self.series[starts[:, None] + k],
            "forecast": self.unscale(pred.reshape(len(starts), self.horizon) + self._base(starts)),
            "persistence": persistence_forecast(self.series, starts, self.horizon),
            "seasonal": seasonal_naive_forecast(self.series, starts, self.horizon, self.season),
        }

    def extra_metrics(self, split: str, outputs, batches: list[Batch]) -> dict[str, float]:
        """RMSE/MAE of the model and both baselines in original units, ``skill`` and ``seasonal_skill``."""
        f = self._forecasts(split, outputs, batches)

        def rmse(a):
            return float(np.sqrt(np.mean((a - f["truth"]) ** 2)))

        def mae(a):
            return float(np.mean(np.abs(a - f["truth"])))

        out = {
            "rmse": rmse(f["forecast"]),
            "mae": mae(f["forecast"]),
            "persistence_rmse": rmse(f["persistence"]),
            "persistence_mae": mae(f["persistence"]),
            "seasonal_rmse": rmse(f["seasonal"]),
            "seasonal_mae": mae(f["seasonal"]),
        }
        for name, base in (("skill", "persistence_rmse"), ("seasonal_skill", "seasonal_rmse")):
            out[name] = 1.0 - out["rmse"] / out[base] if out[base] > 0 else float("nan")
        return out

    def forecast_arrays(self, split: str, outputs, batches: list[Batch], step: int = 0) -> dict[str, np.ndarray]:
        """Arrays (W,) for a forecast plot of horizon step ``step`` (0 = one step ahead): ``time`` of
        the forecast value, ``truth``, ``forecast``, ``persistence``, ``seasonal`` (original units)."""
        if not 0 <= step < self.horizon:
            raise ValueError(f"step={step} must be in [0, {self.horizon - 1}] (data.horizon={self.horizon})")
        f = self._forecasts(split, outputs, batches)
        out = {key: f[key][:, step] for key in ("truth", "forecast", "persistence", "seasonal")}
        out["time"] = self.time[f["starts"] + step]
        return out


# -- the series -----------------------------------------------------------------------------------


def load_sunspots() -> tuple[np.ndarray, np.ndarray]:
    """Yearly sunspot numbers 1700-2008 shipped with statsmodels: (years (309,), values (309,))."""
    from statsmodels.datasets import sunspots as sm_sunspots

    data = sm_sunspots.load_pandas().data
    return data["YEAR"].to_numpy(np.float64), data["SUNACTIVITY"].to_numpy(np.float64)


def load_airline() -> tuple[np.ndarray, np.ndarray]:
    """Monthly airline passengers 1949-1960 (thousands) shipped with aeon: (time in years, values)
    both (144,); time 1949.0 is January 1949."""
    from aeon.datasets import load_airline as aeon_airline

    values = np.asarray(aeon_airline(), np.float64)
    return 1949.0 + np.arange(len(values)) / 12.0, values


def sum_of_sines(seed: int, length: int, periods: Sequence[float], noise: float) -> np.ndarray:
    """(length,) sum of unit sines with the given periods (steps) and seeded phases, plus Gaussian
    noise of standard deviation ``noise``."""
    rng = padded.rng(seed, padded.TRAIN)
    t = np.arange(length)[:, None]
    phases = rng.uniform(0, 2 * np.pi, size=len(periods))
    clean = np.sin(2 * np.pi * t / np.asarray(periods, np.float64) + phases).sum(axis=1)
    return clean + noise * rng.standard_normal(length)


def mackey_glass_series(
    seed: int,
    length: int,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10.0,
    dt: float = 0.1,
    sample_every: float = 1.0,
    washout: float = 1000.0,
) -> np.ndarray:
    """(length,) samples of the Mackey-Glass delay equation
    dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t), taken every ``sample_every`` time units.

    Fourth-order Runge-Kutta with step ``dt`` (tau and sample_every must be multiples of dt); the
    delayed value at half steps is the mean of its two grid neighbours. The history x(t <= 0) is a
    constant 1.2 + U(-0.1, 0.1) drawn from ``seed``; the first ``washout`` time units are dropped.
    """
    lag, every = round(tau / dt), round(sample_every / dt)
    if not (math.isclose(lag * dt, tau) and math.isclose(every * dt, sample_every)) or lag < 1 or every < 1:
        raise ValueError(f"data.tau={tau} and data.sample_every={sample_every} must be multiples of dt={dt}")
    skip = round(washout / dt)
    steps = skip + length * every
    x = np.empty(lag + steps + 1)
    x[: lag + 1] = 1.2 + padded.rng(seed, padded.TRAIN).uniform(-0.1, 0.1)

    def f(now: float, delayed: float) -> float:
        return beta * delayed / (1.0 + delayed**n) - gamma * now

    for i in range(lag, lag + steps):
        d0, d1 = x[i - lag], x[i - lag + 1]
        dh = 0.5 * (d0 + d1)
        k1 = f(x[i], d0)
        k2 = f(x[i] + 0.5 * dt * k1, dh)
        k3 = f(x[i] + 0.5 * dt * k2, dh)
        k4 = f(x[i] + dt * k3, d1)
        x[i + 1] = x[i] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[lag + skip + every :: every][:length]


TIME_NAMES = ("date", "time", "timestamp", "datetime", "ds", "year", "month", "day", "period")


def read_csv_time(path: str, column: str | None, time_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The numeric column ``column`` of the CSV file ``path`` (with a header row) as (N,) float64, and
    its times: the column ``time_column``, or without one the column named like a time
    (:data:`TIME_NAMES`) if there is one, parsed as numbers or dates (pandas), which must be strictly
    increasing: a duplicated or out-of-order time is a one-line ValueError naming its line (sort the
    file by time first). ``time_column=""`` reads no time column. One-line ValueError naming the file
    and the column (and listing the valid columns) for anything else."""
    values = read_csv_column(path, column)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [row for row in _csv.reader(fh) if any(cell.strip() for cell in row)]
    header = [h.strip() for h in rows[0]]
    if time_column is None:
        time_column = next((h for h in header if h.lower() in TIME_NAMES and h != column), "")
    if not time_column:
        return values, None
    if time_column not in header:
        raise ValueError(f"data.time_column={time_column!r} is not a column of {path}; valid: {', '.join(header)}")
    j = header.index(time_column)
    cells = [row[j].strip() if j < len(row) else "" for row in rows[1:]]
    times = _parse_times(path, time_column, cells)
    steps = np.diff(times)
    bad = np.flatnonzero(steps <= np.zeros_like(steps))
    if len(bad):
        i = int(bad[0]) + 1
        what = "repeats" if steps[bad[0]] == np.zeros_like(steps[bad[0]]) else "comes before"
        raise ValueError(
            f"{path} line {i + 2}, column {time_column!r}: {cells[i]!r} {what} the time of the line before "
            f"({cells[i - 1]!r}); valid: strictly increasing times, one row per time (sort the file by "
            f"{time_column!r}, or set data.time_column='' to read the rows in file order)"
        )
    return values, times


def _parse_times(path: str, name: str, cells: list[str]) -> np.ndarray:
    """Times as numbers if every cell is one, else as dates (ISO or pandas' inferred format)."""
    try:
        return np.array([float(c) for c in cells])
    except ValueError:
        pass
    import pandas as pd

    try:
        return pd.to_datetime(pd.Series(cells), format="mixed").to_numpy()
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{path}, column {name!r}: not numbers or dates ({' '.join(str(err).split())[:120]}); valid: one "
            "time per row, e.g. 2024-01-31 or 1999"
        ) from None


def read_csv_column(path: str, column: str | None) -> np.ndarray:
    """The numeric column ``column`` of the CSV file ``path`` (with a header row) as (N,) float64.

    One-line ValueError naming the file and the column (and listing the valid columns) otherwise.
    """
    if not os.path.isfile(path):
        raise ValueError(f"data.path={path!r}: no such file (expected a CSV file with a header row)")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(_csv.reader(fh))
    if not rows:
        raise ValueError(f"data.path={path!r} is empty (expected a CSV file with a header row)")
    header = [h.strip() for h in rows[0]]
    if column is None or column not in header:
        raise ValueError(f"data.column={column!r} is not a column of {path}; valid: {', '.join(header)}")
    j = header.index(column)
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        cell = row[j].strip() if j < len(row) else ""
        try:
            value = float(cell)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise ValueError(f"{path} line {line}, column {column!r}: {cell!r} is not a finite number")
        values.append(value)
    if len(values) < 2:
        raise ValueError(f"{path}, column {column!r}: needs at least 2 values, got {len(values)}")
    return np.array(values)


_WINDOWING = ("seed", "batch_size", "seq_len", "horizon", "season", "val_fraction", "test_fraction", "log", "residual")


def _forecast(values, name: str, info: dict, arguments: dict, time=None) -> Forecast:
    """The :class:`Forecast` of a factory: ``values`` with the windowing options among the factory's
    ``arguments`` (its ``locals()``; each factory's signature holds their defaults)."""
    return Forecast(values, name=name, time=time, info=info, **{k: arguments[k] for k in _WINDOWING if k in arguments})


@register("sunspots")
def sunspots(
    seed: int = 0,
    batch_size: int = 32,
    seq_len: int = 11,
    horizon: int = 1,
    season: int = 11,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    log: bool = False,
    residual: bool = True,
) -> Forecast:
    """Yearly sunspot numbers 1700-2008 (309 values); ``season`` 11 years, the solar cycle, which is
    also the default input length."""
    years, values = load_sunspots()
    return _forecast(
        values, "sunspots", {"units": "yearly mean sunspot number", "source": "statsmodels"}, locals(), time=years
    )


@register("airline")
def airline(
    seed: int = 0,
    batch_size: int = 32,
    seq_len: int = 24,
    horizon: int = 1,
    season: int = 12,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    log: bool = False,
    residual: bool = True,
) -> Forecast:
    """Monthly international airline passengers 1949-1960 (144 values, thousands); ``season`` 12."""
    time, values = load_airline()
    return _forecast(
        values, "airline", {"units": "thousands of passengers per month", "source": "aeon"}, locals(), time=time
    )


@register("sines")
def sines(
    seed: int = 0,
    batch_size: int = 32,
    length: int = 2000,
    periods: Sequence[int] = (12, 30),
    noise: float = 0.1,
    seq_len: int = 60,
    horizon: int = 1,
    season: int | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    residual: bool = True,
) -> Forecast:
    """Noisy sum of unit sines with seeded phases; ``season`` defaults to the least common multiple
    of the (integer) periods, after which the clean signal repeats exactly."""
    length = padded.check_positive("length", length)
    if not periods or any(p <= 0 for p in periods):
        raise ValueError(f"data.periods={list(periods)!r} must be a non-empty list of positive periods (steps)")
    if season is None:
        if any(int(p) != p for p in periods):
            raise ValueError(f"data.season must be set when data.periods={list(periods)} are not integers")
        season = math.lcm(*(int(p) for p in periods))
    return _forecast(
        sum_of_sines(seed, length, periods, noise), "sines", {"periods": list(periods), "noise": noise}, locals()
    )


@register("mackey_glass")
def mackey_glass(
    seed: int = 0,
    batch_size: int = 32,
    length: int = 2000,
    tau: float = 17.0,
    sample_every: float = 1.0,
    seq_len: int = 50,
    horizon: int = 1,
    season: int = 50,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    residual: bool = True,
) -> Forecast:
    """Mackey-Glass series (tau 17: mildly chaotic), seeded initial history; ``season`` 50 steps, near
    its quasi-period at sample_every 1."""
    length = padded.check_positive("length", length)
    values = mackey_glass_series(seed, length, tau=tau, sample_every=sample_every)
    return _forecast(values, "mackey_glass", {"tau": tau, "sample_every": sample_every}, locals())


@register("csv")
def csv(
    path: str | None = None,
    column: str | None = None,
    time_column: str | None = None,
    seed: int = 0,
    batch_size: int = 32,
    seq_len: int = 20,
    horizon: int = 1,
    season: int = 1,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    log: bool = False,
    residual: bool = True,
) -> Forecast:
    """Column ``column`` of a user CSV file ``path`` (header row, one value per row, in time order).
    ``time_column`` names the column of times (default: a column named date, time, year, ...; ""
    for none), which are checked to increase strictly (:func:`read_csv_time`). Set ``season`` to the
    series' period in rows (default 1: seasonal-naive = persistence at step 0)."""
    if path is None:
        raise ValueError("data.path is required for data set 'csv' (a CSV file with a header row)")
    values, times = read_csv_time(str(path), column, time_column)
    info = {"path": str(path), "column": column, "time_column": time_column}
    return _forecast(values, os.path.basename(str(path)), info, locals(), time=times)
