"""Load tests: locust users that call the service like its real callers (locustfile.py), their text pools (pools.py)
and phase plans (plan.py), a headless runner (runner.py, `python -m loadtests.run`), and the promotion benchmark
(promotion.py, `python -m loadtests.promotion`: locust while the default model switches and a job trains). Run from
the repository root: locust puts the working directory on sys.path, which is how the locustfile finds this package.
Not part of the wheel."""
