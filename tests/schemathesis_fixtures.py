"""Schemathesis tests built when their pytest item runs, not when it is collected: one item per API operation.

`schema.parametrize()` builds every operation's Hypothesis test while collecting, coverage cases included (about
10 CPU-s for the 59 operations of the two schemathesis modules), and under pytest-xdist every worker collects every
item, so each worker paid for the whole schema. Here an item is parametrized by an operation's label, read from the
schema without building anything, and `run_operation` builds that one operation's test in the worker that runs it,
as `schema.parametrize()` would (schemathesis' own builder: the same phases, seed, settings and checks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemathesis.checks import load_all_checks
from schemathesis.core.result import Err
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.schemas import BaseSchema

__all__ = ["operation_labels", "run_operation"]


def operation_labels(schema: BaseSchema) -> list[str]:
    """Each operation's label ("POST /v1/embeddings"), in the schema's order."""
    return [result.ok().label for result in schema.get_all_operations()]


def run_operation(schema: BaseSchema, label: str, test: Callable[[Any], None]) -> None:
    """Run `test` (a function of `case`, with its `hypothesis.settings`) on the operation `label` of `schema`."""
    one = schema.exclude(lambda context: context.operation.label != label)  # includes widen a schema, excludes narrow
    load_all_checks()  # as schemathesis' pytest plugin does before building: a check named in a test must exist
    built = list(get_all_tests(schema=one, test_func=test, settings=None, given_kwargs={}))
    assert len(built) == 1, f"{label}: {len(built)} operations"
    if isinstance(built[0], Err):
        raise built[0].err()
    _, hypothesis_test = built[0].ok()
    hypothesis_test()
