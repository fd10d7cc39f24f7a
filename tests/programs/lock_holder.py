"""Run by tests/test_io_lock.py: hold the run lock of the directory ``argv[1]``, print ``locked``, and
keep it until stdin is closed or this process is killed."""

import sys

from lstmlab.io.lock import RunLock

lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
