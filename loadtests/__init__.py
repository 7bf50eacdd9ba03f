"""Load tests: locust users that call the service like its real callers, their text pools, a headless runner."""
