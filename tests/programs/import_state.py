"""Run by tests/test_layers.py in a fresh process with the modules to import as arguments: importing
them imports no ``matplotlib.pyplot``, leaves matplotlib's backend unset and ``sys.unraisablehook`` as
Python set it. Prints ``clean``; an assertion fails otherwise."""

import importlib
import sys

import matplotlib

before = matplotlib.rcParams._get_backend_or_none()
for name in sys.argv[1:]:
    importlib.import_module(name)
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
assert matplotlib.rcParams._get_backend_or_none() == before, matplotlib.rcParams._get_backend_or_none()
assert sys.unraisablehook is sys.__unraisablehook__, sys.unraisablehook
print("clean")
