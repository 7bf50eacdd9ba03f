"""Load tests: locust users that call the service like its real callers (locustfile.py), their text pools (pools.py)
and phase plans (plan.py), and a headless runner (runner.py, `python -m loadtests.run`). Run from the repository
root: locust puts the working directory on sys.path, which is how the locustfile finds this package. Not part of the
wheel."""
