"""Load request/response shapes from the vendor descriptions copied under tests/specs/."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema

SPECS = Path(__file__).resolve().parents[2] / "specs"


def load(relative: str) -> Any:
    # Microsoft's files start with a UTF-8 byte-order mark.
    return json.loads((SPECS / relative).read_text(encoding="utf-8-sig"))


@functools.cache
def ado() -> dict[str, Any]:
    spec: dict[str, Any] = load("azure-devops/distributedTask-7.1-task.json")
    return spec


@functools.cache
def github() -> dict[str, Any]:
    spec: dict[str, Any] = load("github/openapi-subset.json")
    return spec


def ado_example(name: str) -> dict[str, Any]:
    example: dict[str, Any] = load(f"azure-devops/examples/{name}.json")
    return example


def ado_operation(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    """(method, path template, operation) of an operationId of the distributedTask description."""
    for path, item in ado()["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return method.upper(), path, operation
    raise KeyError(operation_id)


def ado_validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    """Swagger 2.0 schemas are JSON Schema draft 4 with '#/definitions/...' references."""
    return jsonschema.Draft4Validator({**schema, "definitions": ado()["definitions"]})


def without_nulls(value: Any) -> Any:
    """Azure DevOps serialises unset properties as null; Swagger 2.0 cannot say "nullable".

    Microsoft's recorded answers carry such nulls (``"location": null`` on a TaskLog), so they
    are compared with the description as the absent properties they stand for.
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def ado_body_schema(operation_id: str) -> dict[str, Any]:
    _, _, operation = ado_operation(operation_id)
    for parameter in operation["parameters"]:
        if parameter.get("in") == "body":
            schema: dict[str, Any] = parameter["schema"]
            return schema
    raise KeyError(operation_id)


def ado_response_schema(operation_id: str) -> dict[str, Any] | None:
    _, _, operation = ado_operation(operation_id)
    response = operation["responses"].get("200", {})
    schema: dict[str, Any] | None = response.get("schema")
    return schema


def openapi30_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` -> JSON Schema ``null`` alternatives (the only dialect gap we hit)."""
    if isinstance(node, list):
        return [openapi30_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi30_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _github_components() -> dict[str, Any]:
    converted: dict[str, Any] = openapi30_to_jsonschema(copy.deepcopy(github()["components"]))
    return converted


def github_validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator({**openapi30_to_jsonschema(schema), "components": _github_components()})


def github_operation(method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = github()["paths"][path][method.lower()]
    return operation


def github_request_schema(method: str, path: str) -> dict[str, Any]:
    schema: dict[str, Any] = github_operation(method, path)["requestBody"]["content"]["application/json"]["schema"]
    return schema


def github_response(method: str, path: str, status: str) -> dict[str, Any]:
    response: dict[str, Any] = github_operation(method, path)["responses"][status]
    return response


def github_example(name: str) -> Any:
    return github()["components"]["examples"][name]["value"]


def github_webhook_schema(name: str) -> dict[str, Any]:
    webhook = github()["x-webhooks"][name]["post"]
    schema: dict[str, Any] = webhook["requestBody"]["content"]["application/json"]["schema"]
    return schema


def path_regex(template: str) -> re.Pattern[str]:
    """``/a/{b}/c`` -> a regex with a named group per parameter."""
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


def assert_valid(validator: jsonschema.protocols.Validator, instance: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
        raise AssertionError(f"{what} does not match the spec: {details}")
