"""``python -m lstmlab.report``."""

from lstmlab.report.command import main

raise SystemExit(main())
