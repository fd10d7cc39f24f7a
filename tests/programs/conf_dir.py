"""Run by tests/test_train_cli.py against an unpacked wheel: print where lstmlab finds its configs."""

from lstmlab.cli import conf_dir

print(conf_dir())
