"""A user's module as the command line's ``imports=[register_mgu]`` imports it: importing it registers
the MGU cell that ``tests/test_cells_custom.py`` defines, as ``mgu``."""

from test_cells_custom import MGU

from lstmlab import cells

cells.register("mgu", MGU())
