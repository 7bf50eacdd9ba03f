"""`python -m loadtests.run`: the headless load-test runner (service/tools/loadtest_run.py; see its docstring)."""

import sys

from service.tools.loadtest_run import LOAD_ROUTES, main

__all__ = ["LOAD_ROUTES", "main"]

if __name__ == "__main__":
    sys.exit(main())
