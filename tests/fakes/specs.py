"""Load vendor API descriptions from ``tests/specs/`` and validate fake answers against them.

``tests/specs/`` holds unmodified copies of public API descriptions:

* ``azure-devops/*.json``: Azure DevOps REST 7.1 (Swagger 2.0) from MicrosoftDocs/vsts-rest-api-specs,
  and ``azure-devops/examples/*.json``: Microsoft's recorded request/response examples;
* ``github/openapi-subset.json``: GitHub REST (OpenAPI 3.0) from the npm package @octokit/openapi.

Usage::

    approvals = Spec("azure-devops/approvalsAndChecks-7.1-pipelinesapproval.json")
    approvals.validate(body, "#/definitions/Approval")             # a schema by reference
    approvals.validate_response("/{organization}/{project}/_apis/pipelines/approvals", "get", items)
    body = recorded_example("azure-devops/examples/PATCH__UpdateApproval.json")   # response body

    github = Spec("github/openapi-subset.json")
    github.validate_response("/repos/{owner}/{repo}/actions/runs/{run_id}/approvals", "get", reviews)
    reviews = github.example("environment-approvals-items")       # components/examples/<name>.value

OpenAPI 3.0's ``nullable: true`` is translated to JSON Schema (``type: [T, "null"]``) so that
``jsonschema`` can check documents that GitHub really sends.
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

    def response_schema(self, path: str, method: str, status: str = "200") -> dict[str, Any]:
        response = self.operation(path, method)["responses"][status]
        if "schema" in response:  # Swagger 2.0
            schema: dict[str, Any] = response["schema"]
            return schema
        schema = response["content"]["application/json"]["schema"]  # OpenAPI 3
        return schema

    def validate(self, instance: Any, schema: dict[str, Any] | str) -> None:
        """Raise ``jsonschema.ValidationError`` unless ``instance`` matches ``schema`` (or a ``#/`` ref)."""
        target = {"$ref": schema} if isinstance(schema, str) else schema
        # Draft 4 ignores siblings of $ref at the root, so the root can carry the whole document
        # (definitions / components) for references to resolve against.
        root = {**self.doc, **({"$ref": target["$ref"]} if "$ref" in target else {"allOf": [target]})}
        root.pop("properties", None)
        jsonschema.Draft4Validator(root).validate(instance)

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
