"""`python -m loadtests.run`: the headless load-test runner (loadtests/runner.py; see its docstring)."""

import sys

from loadtests.runner import LOAD_ROUTES, main

__all__ = ["LOAD_ROUTES", "main"]

if __name__ == "__main__":
    sys.exit(main())
