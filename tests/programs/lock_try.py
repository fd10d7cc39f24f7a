"""Run by tests/test_io_lock.py: try to take the run lock of the directory ``argv[1]``; print
``acquired``, or the refusal on stderr and exit with status 2."""

import sys

from lstmlab.io.lock import RunLock, RunLockedError

try:
    RunLock(sys.argv[1]).acquire()
except RunLockedError as err:
    print(err, file=sys.stderr)
    raise SystemExit(2) from None
print("acquired")
