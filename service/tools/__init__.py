"""Code the tools share (bench/, loadtests/): kept in the package so that no tool imports another or edits sys.path.

Nothing here is imported by the service itself; the modules need only the base install.
"""
