"""JSON schema (draft 2020-12) of the policy file, version 1."""

from __future__ import annotations

from typing import Any

from mlgate.lineage.chain import LINK_IDS

THRESHOLD_PATTERN = r"^\s*(>=|<=|==|>|<)\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
NAME_PATTERN = r"^[A-Za-z0-9_.\-/ ]{1,250}$"

_thresholds: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": NAME_PATTERN},
    "additionalProperties": {"type": "string", "pattern": THRESHOLD_PATTERN},
}

REQUIREMENTS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "lineage": {"type": "array", "items": {"enum": list(LINK_IDS)}, "uniqueItems": True},
        "tags_required": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN},
                          "uniqueItems": True},
        "metrics": _thresholds,
        "fairness": _thresholds,
        "signing": {
            "type": "object",
            "additionalProperties": False,
            "required": ["trusted_keys"],
            "properties": {
                "trusted_keys": {"type": "array", "minItems": 1, "maxItems": 20, "uniqueItems": True,
                                 "items": {"type": "string", "minLength": 1, "maxLength": 1024}},
            },
        },
        "approvals": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_approvers": {"type": "integer", "minimum": 1, "maximum": 100},
                "approver_not_author": {"type": "boolean"},
                "approver_not_requester": {"type": "boolean"},
                "approver_not_committer": {"type": "boolean"},
            },
        },
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://mlgate.dev/policy/v1.json",
    "title": "mlgate release policy",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "risk_classes"],
    "properties": {
        "version": {"const": 1},
        "default_risk": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
        "risk_classes": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": r"^[A-Za-z0-9_-]{1,64}$"},
            "additionalProperties": REQUIREMENTS,
        },
        "stages": {
            "type": "object",
            "propertyNames": {"pattern": r"^[A-Za-z0-9_-]{1,64}$"},
            "additionalProperties": {"anyOf": [REQUIREMENTS, {"type": "null"}]},
        },
    },
}
