"""The policy YAML's bounds: fair uses of anchors load, bombs and non-numbers are refused with line and key."""

from __future__ import annotations

import math
import time

import pytest

from mlgate.errors import InvalidInputError
from mlgate.policy import Bound, Threshold, parse_policy
from mlgate.policy.rules import threshold_rules
from mlgate.policy.yamlsafe import MAX_DEPTH, MAX_NODES, YamlProblems, load


def test_shared_requirements_through_an_anchor_and_a_merge_key_load() -> None:
    text = """\
version: 1
risk_classes:
  high: &strict
    lineage: [source_run]
    metrics: {auc: ">= 0.8"}
  critical:
    <<: *strict
    tags_required: [owner]
stages:
  production: *strict
"""
    policy = parse_policy(text)
    critical = policy.requirements("critical", "production")
    assert critical.lineage == ("source_run",) and critical.tags_required == ("owner",)
    assert [str(b) for b in critical.metrics["auc"]] == [">= 0.8 (risk class critical)", ">= 0.8 (stage production)"]


def test_an_alias_bomb_stops_at_the_node_limit_in_milliseconds() -> None:
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    started = time.monotonic()
    with pytest.raises(YamlProblems) as info:
        load(bomb)
    assert time.monotonic() - started < 1.0
    assert f"more than {MAX_NODES} values after expanding aliases" in str(info.value.problems[0])


@pytest.mark.parametrize(("text", "expected"), [
    ("a: &a\n  b: *a\n", "line 2, key a.b: recursive anchor"),
    ("a: 1" + "0" * 60 + "\n", "line 1, key a: an integer of 61 digits (limit 40)"),
    ("a: -1" + "_000" * 14 + "\n", "integer of 43 digits"),
    ("a: .NaN\n", "line 1, key a: '.NaN' is not a finite number"),
    ("a: -.inf\n", "'-.inf' is not a finite number"),
    ("a: 1.0e+400\n", "'1.0e+400' is not a finite number"),
    ("a:\n  3: x\n", "line 2, key a: key '3' is a number, not a string"),
    ("a:\n  2024-01-01: x\n", "key '2024-01-01' is a date"),
    ("a: [x, {b: 1, b: 2}]\n", "line 1, key a[1].b: duplicate key"),
])
def test_bounds_name_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(YamlProblems) as info:
        load(text)
    assert expected in str(info.value.problems[0])


def test_nesting_beyond_the_limit_is_refused_by_the_scanner_and_the_composer() -> None:
    from yaml import YAMLError

    for text in ("a: " + "[" * (MAX_DEPTH + 5), "a: " + "{b: " * (MAX_DEPTH + 5) + "1" + "}" * (MAX_DEPTH + 5)):
        with pytest.raises(YAMLError, match="nested deeper than"):
            load(text)
    assert load("a: " + "[" * 10 + "]" * 10)[0] == {"a": [[[[[[[[[[]]]]]]]]]]}


@pytest.mark.parametrize("text", [">= 1e999", "<= -1e309", ">= 1" + "0" * 400])
def test_a_threshold_that_overflows_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="overflows to infinity"):
        Threshold.parse(text)
    with pytest.raises(InvalidInputError, match=r"line 3, key risk_classes\.high\.metrics\.auc: .* overflows"):
        parse_policy(f"version: 1\nrisk_classes:\n  high: {{metrics: {{auc: '{text}'}}}}\n", source="p.yaml")


@pytest.mark.parametrize("value", [True, False, math.inf, -math.inf, math.nan, "0.9", None])
def test_a_non_number_never_meets_a_threshold(value: object) -> None:
    for op in (">=", "<=", "==", ">", "<"):
        assert Threshold.parse(f"{op} 0").check(value) is False  # type: ignore[arg-type]
    bounds = (Bound(Threshold.parse(">= 0.5"), "risk class high"),)
    [rule] = threshold_rules("metrics", {"auc": value}, {"auc": bounds}, True)  # type: ignore[dict-item]
    assert not rule.passed and "not a finite number" in rule.message
