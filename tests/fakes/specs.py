"""Load vendor API descriptions from ``tests/specs/`` and validate fake traffic against them.

``tests/specs/`` holds unmodified copies of public API descriptions:

* ``azure-devops/*.json``: Azure DevOps REST 7.1 (Swagger 2.0) from MicrosoftDocs/vsts-rest-api-specs,
  and ``azure-devops/examples/*.json``: Microsoft's recorded request/response examples;
* ``github/openapi-subset.json``: GitHub REST (OpenAPI 3.0, with its ``x-webhooks``) from the npm
  package @octokit/openapi, and ``github/webhook-examples.json``: GitHub's recorded webhook payloads.

Usage::

    approvals = Spec("azure-devops/approvalsAndChecks-7.1-pipelinesapproval.json")
    approvals.validate(body, "#/definitions/Approval")             # a schema by reference
    approvals.validate_response("/{organization}/{project}/_apis/pipelines/approvals", "get", items)
    body = recorded_example("azure-devops/examples/PATCH__UpdateApproval.json")   # response body

    tasks = Spec("azure-devops/distributedTask-7.1-task.json")
    method, template, operation = tasks.operation_by_id("Logs_Create")   # route a fake by its template
    tasks.check(body, tasks.request_schema(template, method), "Logs_Create body")  # AssertionError

    github = Spec("github/openapi-subset.json")
    github.validate_response("/repos/{owner}/{repo}/actions/runs/{run_id}/approvals", "get", reviews)
    reviews = github.example("environment-approvals-items")       # components/examples/<name>.value
    github.check(payload, github.webhook_schema("deployment-protection-rule-requested"), "payload")

``validate`` raises ``jsonschema.ValidationError``; ``check`` raises ``AssertionError`` listing the
first mismatches (what a fake records as a violation). Every schema is checked as JSON Schema
draft 4 (the dialect of Swagger 2.0 and, apart from ``nullable``, of OpenAPI 3.0) with the whole
document at the root, so ``#/definitions/...`` and ``#/components/...`` references resolve.

Documented adaptations, the only places where what a vendor sends and its description disagree:

* OpenAPI 3.0's ``nullable: true`` is translated to JSON Schema (``type: [T, "null"]``, ``null``
  added to an ``enum``, else ``anyOf [..., null]``) so that documents GitHub really sends validate.
* Swagger 2.0 cannot say "nullable", yet Azure DevOps serialises unset properties as ``null``
  (``"location": null`` on a TaskLog in Microsoft's recorded answers): :func:`without_nulls`
  compares such an answer with the description as the absent properties the nulls stand for.
* ``VssJsonCollectionWrapper`` is generic; the description renders its ``value`` as
  ``"string", format "T"``. :meth:`Spec.check_collection` checks the wrapper's other fields
  against it and ``value`` as a list of the item type (``TimelineRecord`` for ``Records_Update``,
  its response type) whose length is ``count``.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPECS = Path(__file__).resolve().parents[1] / "specs"


@cache
def _load(relative: str) -> Any:
    return json.loads((SPECS / relative).read_text(encoding="utf-8-sig"))


def load(relative: str) -> Any:
    """A deep copy of a spec file (``utf-8-sig``: Microsoft's files start with a BOM)."""
    return copy.deepcopy(_load(relative))


def recorded_example(relative: str, status: str = "200") -> Any:
    """The response body of one of Microsoft's recorded examples (``httpExamples`` format)."""
    return load(relative)["responses"][status]["body"]


def recorded_answer(relative: str) -> tuple[int, Any]:
    """(status, body) of a recorded example that documents exactly one response."""
    ((status, response),) = load(relative)["responses"].items()
    return int(status), response.get("body")


def without_nulls(value: Any) -> Any:
    """``value`` without the ``null`` properties Azure DevOps writes for unset ones (see above)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _nullable_to_jsonschema(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _nullable_to_jsonschema(v) for k, v in node.items()}
        if out.pop("nullable", False) is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
            elif "type" not in out:
                out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_nullable_to_jsonschema(v) for v in node]
    return node


class Spec:
    """One API description; validates instances against its schemas (refs resolve in the document)."""

    def __init__(self, relative: str) -> None:
        self.relative = relative
        self.doc: dict[str, Any] = _nullable_to_jsonschema(load(relative))

    def operation(self, path: str, method: str) -> dict[str, Any]:
        try:
            op: dict[str, Any] = self.doc["paths"][path][method.lower()]
        except KeyError as exc:
            raise KeyError(f"{self.relative} documents no {method.upper()} {path}") from exc
        return op

    def operation_by_id(self, operation_id: str) -> tuple[str, str, dict[str, Any]]:
        """(METHOD, path template, operation) of the operation with this ``operationId``."""
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if isinstance(op, dict) and op.get("operationId") == operation_id:
                    return method.upper(), path, op
        raise KeyError(f"{self.relative} documents no operation {operation_id!r}")

    def request_schema(self, path: str, method: str) -> dict[str, Any]:
        op = self.operation(path, method)
        if "requestBody" in op:  # OpenAPI 3
            schema: dict[str, Any] = op["requestBody"]["content"]["application/json"]["schema"]
            return schema
        for parameter in op.get("parameters", []):  # Swagger 2.0
            if parameter.get("in") == "body":
                schema = parameter["schema"]
                return schema
        raise KeyError(f"{self.relative} documents no request body for {method.upper()} {path}")

    def response_schema(self, path: str, method: str, status: str = "200") -> dict[str, Any]:
        response = self.operation(path, method)["responses"][status]
        if "schema" in response:  # Swagger 2.0
            schema: dict[str, Any] = response["schema"]
            return schema
        schema = response["content"]["application/json"]["schema"]  # OpenAPI 3
        return schema

    def webhook_schema(self, name: str) -> dict[str, Any]:
        """The payload schema of an OpenAPI ``x-webhooks`` entry."""
        schema: dict[str, Any] = self.doc["x-webhooks"][name]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]
        return schema

    def validator(self, schema: dict[str, Any] | str) -> jsonschema.Draft4Validator:
        target = {"$ref": schema} if isinstance(schema, str) else schema
        # Draft 4 ignores siblings of $ref at the root, so the root can carry the whole document
        # (definitions / components) for references to resolve against.
        root = {**self.doc, **({"$ref": target["$ref"]} if "$ref" in target else {"allOf": [target]})}
        root.pop("properties", None)
        return jsonschema.Draft4Validator(root)

    def validate(self, instance: Any, schema: dict[str, Any] | str) -> None:
        """Raise ``jsonschema.ValidationError`` unless ``instance`` matches ``schema`` (or a ``#/`` ref)."""
        self.validator(schema).validate(instance)

    def check(self, instance: Any, schema: dict[str, Any] | str, what: str) -> None:
        """Raise ``AssertionError`` naming ``what`` and the first mismatches unless ``instance`` matches."""
        errors = sorted(self.validator(schema).iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            details = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
            raise AssertionError(f"{what} does not match the spec: {details}")

    def check_collection(self, body: Any, wrapper: dict[str, Any] | str, item: str, what: str) -> None:
        """Check a ``VssJsonCollectionWrapper`` body: its fields, then ``value`` as a list of ``item``."""
        assert isinstance(body, dict), f"{what} must be an object"
        self.check({k: v for k, v in body.items() if k != "value"}, wrapper, f"{what} wrapper")
        assert isinstance(body.get("value"), list), "value must be the list of records"
        assert body.get("count") == len(body["value"]), "count must equal len(value)"
        for element in body["value"]:
            self.check(element, item, f"{what} item")

    def validate_response(self, path: str, method: str, instance: Any, status: str = "200") -> None:
        self.validate(instance, self.response_schema(path, method, status))

    def example(self, name: str) -> Any:
        """``components/examples/<name>/value`` of an OpenAPI document."""
        return copy.deepcopy(self.doc["components"]["examples"][name]["value"])

    def definition(self, ref: str) -> Any:
        node: Any = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node
