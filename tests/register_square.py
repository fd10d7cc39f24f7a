"""A user's module as the command line's ``imports=[register_square]`` imports it: importing it registers
``square``, a data set written in Python (no ``conf/data`` file), which ``data=square`` then selects
with the defaults of its factory's signature."""

from lstmlab import data
from lstmlab.data.series import sines


@data.register("square")
def square(seed: int = 0, batch_size: int = 16, seq_len: int = 20, length: int = 400, period: int = 8):
    """A noiseless sine of one period, forecast one step ahead."""
    return sines(seed=seed, batch_size=batch_size, seq_len=seq_len, length=length, periods=(period,), noise=0.0)
