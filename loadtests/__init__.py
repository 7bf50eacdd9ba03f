"""Load tests: locust users that call the service like its real callers and a headless runner (their text pools and
phase plans, which both need, are in service/tools)."""
