"""Fast checks of the functional cell API's shapes and option validation."""

import jax
import jax.numpy as jnp
import pytest

from lstmlab import cells


@pytest.mark.parametrize("name", cells.CELLS)
def test_scan_returns_time_major_outputs_and_final_carry(name):
    params = cells.init(name, jax.random.key(0), input_size=5, hidden_size=8)
    xs = jax.random.normal(jax.random.key(1), (4, 3, 5))
    carry, hs = cells.scan(name, params, xs)
    assert hs.shape == (4, 3, 8)
    h_final = cells.get(name).output(carry)
    assert jnp.allclose(h_final, hs[-1])


def test_unknown_cell_and_option_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid: lstm, peephole, gru, rnn"):
        cells.init("lstn", jax.random.key(0), 2, 3)
    with pytest.raises(ValueError, match="variant"):
        cells.init("lstm", jax.random.key(0), 2, 3, variant="XYZ")
    with pytest.raises(ValueError, match="takes no option 'variant'"):
        cells.init("gru", jax.random.key(0), 2, 3, variant="NIG")
