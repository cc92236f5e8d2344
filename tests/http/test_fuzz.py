"""Schemathesis fuzzes the server's OpenAPI document: no input gives a 5xx.

Every operation gets valid (positive) and invalid (negative) requests; every
answer must be below 500, and every error a problem document.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from .conftest import Server

EXAMPLES = 12


def _short_wait(case: Any) -> Any:
    # A generated long poll on a queue that exists would wait up to 20 s.
    if isinstance(case.body, dict) and isinstance(case.body.get("wait"), int | float):
        case.body["wait"] = min(case.body["wait"], 0.05)
    return case


def _check(case: Any, base: str) -> None:
    response = case.call(base_url=base, timeout=30)
    label = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{label}: {response.text}"
    if response.status_code >= 400:
        doc = response.json()
        assert doc["status"] == response.status_code, label
        assert doc["detail"], label


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_answers_5xx(server: Server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(server.base + "/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20
    strategy = st.one_of(
        [op.as_strategy(generation_mode=mode).map(_short_wait) for op in operations]
    )

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        _check(case, server.base)

    fuzz()
