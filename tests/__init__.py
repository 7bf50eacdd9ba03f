"""The test suite. One BLAS and OpenMP thread per process, set here because this package is imported before
conftest.py and before numpy, faiss or torch load their thread pools (read once, at load time).

Why: the suite runs several processes on 2 cores (pytest-xdist workers, uvicorn servers). OpenBLAS's and libgomp's
threads spin while they wait, so an oversubscribed pool burns CPU instead of sharing it: an SVD of 500 × 384 (the
drift monitor's mix floor, computed by every app) took 0.4-2.8 CPU-s with 2 threads against 0.035 s with 1, and
tests/test_gateway_bad_input.py, test_drift_api.py and test_drift_monitor.py took 51 CPU-s (217 s) against 20 (39 s).
Subprocesses inherit the setting; an explicit value in the environment is kept.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
