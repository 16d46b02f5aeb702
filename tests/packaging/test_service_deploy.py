"""The service's container image and Azure Container Apps template, checked for what can be checked here.

The `bicep` CLI is not installable on this project's machines (it ships on no registry they reach),
so the template is not compiled here. It is parsed instead with the Bicep grammar of tree-sitter
(`tree-sitter-bicep`): a syntax error fails; every name it uses must be declared in the template or be
one of Bicep's documented functions and decorators (what `bicep build` reports as BCP057/BCP082);
no parameter or variable may be unused (the linter's no-unused-params and no-unused-vars); and the
parsed resources are held to the roles, settings and shape the README promises. `az bicep build` on
a workstation remains the full validation (resource types and API versions are not checked here).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib

from mlgate.service.config import SECRET_KEYS, SETTINGS
from tests.packaging.conftest import tool

pytestmark = pytest.mark.packaging
REPO = Path(__file__).resolve().parents[2]
BICEP = REPO / "deploy" / "azure-container-apps" / "main.bicep"
ROLES = {  # the built-in role definitions the service needs, and nothing else
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "storage",  # Storage Queue Data Contributor
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "storage",  # Storage Table Data Contributor
    "4633458b-17de-408a-b874-0445c86b69e6": "vault",  # Key Vault Secrets User
}
# Bicep's functions and parameter decorators, as its documentation lists them ("Bicep functions" and
# "Parameters in Bicep: decorators")
FUNCTIONS = frozenset((
    "any", "array", "concat", "contains", "empty", "first", "flatten", "indexOf", "intersection", "items", "join",
    "last", "lastIndexOf", "length", "max", "min", "range", "skip", "take", "union", "filter", "map", "reduce",
    "sort", "toObject", "groupBy", "mapValues", "objectKeys", "shallowMerge", "tryGet", "dateTimeAdd",
    "dateTimeFromEpoch", "dateTimeToEpoch", "utcNow", "deployment", "environment", "loadFileAsBase64",
    "loadJsonContent", "loadYamlContent", "loadTextContent", "bool", "float", "int", "json",
    "extensionResourceId", "getSecret", "managementGroupResourceId", "pickZones", "providers", "reference",
    "resourceId", "subscriptionResourceId", "tenantResourceId", "managementGroup", "resourceGroup",
    "subscription", "tenant", "base64", "base64ToJson", "base64ToString", "dataUri", "dataUriToString",
    "endsWith", "format", "guid", "newGuid", "padLeft", "replace", "split", "startsWith", "string", "substring",
    "toLower", "toUpper", "trim", "uniqueString", "uri", "uriComponent", "uriComponentToString", "allowed",
    "batchSize", "description", "discriminator", "export", "maxLength", "maxValue", "metadata", "minLength",
    "minValue", "sealed", "secure",
))
DECLARATIONS = ("parameter_declaration", "variable_declaration", "resource_declaration", "module_declaration",
                "output_declaration")


@dataclass
class Template:
    """main.bicep parsed: its declarations by kind, the names it uses, and each resource's body."""

    source: bytes
    root: object
    declared: dict[str, str] = field(default_factory=dict)  # name -> declaration kind
    used: set[str] = field(default_factory=set)
    called: set[str] = field(default_factory=set)
    resources: dict[str, tuple[str, object]] = field(default_factory=dict)  # name -> (type@version, object)

    def text(self, node: object) -> str:
        return self.source[node.start_byte:node.end_byte].decode()  # type: ignore[attr-defined]


def parse(source: bytes) -> Template:
    import tree_sitter_bicep
    from tree_sitter import Language, Parser

    tree = Parser(Language(tree_sitter_bicep.language())).parse(source)
    broken = next(_nodes(tree.root_node, lambda n: n.type == "ERROR" or n.is_missing), None)
    if broken is not None:
        raise SyntaxError(f"{BICEP.name}:{broken.start_point[0] + 1}:{broken.start_point[1] + 1}: not Bicep: "
                          f"{source[broken.start_byte:broken.end_byte][:60]!r}")
    template = Template(source, tree.root_node)
    for node in _nodes(tree.root_node, lambda n: n.type == "identifier"):
        parent = node.parent
        if parent.type in DECLARATIONS and parent.named_children[0] == node:
            template.declared[template.text(node)] = parent.type.removesuffix("_declaration")
            if parent.type == "resource_declaration":
                kind, body = parent.named_children[1], parent.named_children[-1]
                template.resources[template.text(node)] = (template.text(kind).strip("'"), body)
        elif parent.type == "object_property" and parent.named_children[0] == node:
            continue  # a property's key
        elif parent.type == "call_expression" and parent.named_children[0] == node:
            template.called.add(template.text(node))
        else:
            template.used.add(template.text(node))
    return template


def _nodes(node: object, wanted: object) -> Iterator[object]:
    if wanted(node):  # type: ignore[operator]
        yield node
    for child in node.children:  # type: ignore[attr-defined]
        yield from _nodes(child, wanted)


def properties(template: Template, obj: object) -> dict[str, object]:
    """An object's properties: key (quotes off) -> value node."""
    found = {}
    for prop in obj.named_children:  # type: ignore[attr-defined]
        if prop.type == "object_property":
            key, value = prop.named_children[0], prop.named_children[-1]
            found[template.text(key).strip("'")] = value
    return found


def problems(template: Template) -> list[str]:
    """What `bicep build` and its default linter would report that a parse can show."""
    found = [f"{name} is used but declared nowhere" for name in sorted(template.used - set(template.declared))]
    found += [f"{name}() is not a Bicep function" for name in sorted(template.called - FUNCTIONS)]
    found += [f"{kind} {name} is never used" for name, kind in sorted(template.declared.items())
              if kind in ("parameter", "variable") and name not in template.used]
    return found


@pytest.fixture(scope="module")
def template() -> Template:
    return parse(BICEP.read_bytes())


def test_the_template_parses_and_every_name_it_uses_is_declared(template: Template) -> None:
    assert problems(template) == []
    assert len(template.resources) >= 10 and {"app", "identity", "environment"} <= set(template.resources)


@pytest.mark.parametrize(("change", "says"), [
    (("  name: storageAccountName\n}", "  name: storageAccountName\n"), "not Bicep"),
    (("value: mlflowTrackingUri", "value: mlflowTrackingUrl"), "mlflowTrackingUrl is used but declared nowhere"),
    (("guid(storage.id", "guidOf(storage.id"), "guidOf() is not a Bicep function"),
    (("value: mlflowTrackingUri", "value: 'x'"), "parameter mlflowTrackingUri is never used"),
])
def test_the_checks_catch_a_broken_template(change: tuple[str, str], says: str) -> None:
    text = BICEP.read_text()
    assert change[0] in text
    broken = text.replace(change[0], change[1], 1).encode()
    try:
        found = problems(parse(broken))
    except SyntaxError as exc:
        found = [str(exc)]
    assert any(says in line for line in found), found


def test_the_identity_gets_exactly_the_three_roles_on_their_resources(template: Template) -> None:
    variables = {}
    for node in _nodes(template.root, lambda n: n.type == "variable_declaration"):
        name, value = node.named_children[0], node.named_children[-1]  # type: ignore[attr-defined]
        variables[template.text(name)] = template.text(value).strip("'")
    seen = {}
    for kind, body in template.resources.values():
        if not kind.startswith("Microsoft.Authorization/roleAssignments@"):
            continue
        config = properties(template, body)
        inner = properties(template, config["properties"])
        role = re.fullmatch(r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', (\w+)\)",
                            template.text(inner["roleDefinitionId"]))
        assert role, template.text(inner["roleDefinitionId"])
        assert template.text(inner["principalId"]) == "identity.properties.principalId"
        assert template.text(inner["principalType"]) == "'ServicePrincipal'"
        seen[variables[role.group(1)]] = template.text(config["scope"])
    assert seen == ROLES
    identities = [kind for kind, _ in template.resources.values()
                  if kind.startswith("Microsoft.ManagedIdentity/userAssignedIdentities@")]
    assert len(identities) == 1
    app = properties(template, template.resources["app"][1])
    identity = properties(template, app["identity"])
    assert template.text(identity["type"]) == "'UserAssigned'"
    assert list(properties(template, identity["userAssignedIdentities"])) == ["${identity.id}"]


def test_every_setting_the_template_passes_is_one_mlgate_serve_reads(template: Template) -> None:
    names = set()
    for obj in _nodes(template.root, lambda n: n.type == "object"):
        setting = properties(template, obj)
        if set(setting) == {"name", "value"}:
            names.add(template.text(setting["name"]).strip("'"))
    serve = {name.removeprefix("MLGATE_SERVE_") for name in names if name.startswith("MLGATE_SERVE_")}
    known = {key.upper() for key in SETTINGS} | {f"{key}_FILE".upper() for key in SECRET_KEYS}
    assert serve and serve <= known, sorted(serve - known)
    assert {"STATE", "STATE_STORAGE_ACCOUNT", "STATE_IDENTITY", "STATE_CLIENT_ID", "KEY_VAULT"} <= serve
    assert not serve & {"AZURE_DEVOPS_KEY", "GITHUB_WEBHOOK_SECRET", "GITHUB_PRIVATE_KEY"}, (
        "a secret value in the app's settings: name its Key Vault secret instead")
    app = properties(template, properties(template, template.resources["app"][1])["properties"])
    scale = properties(template, properties(template, app["template"])["scale"])
    assert template.text(scale["minReplicas"]) == "minReplicas"
    ingress = properties(template, properties(template, app["configuration"])["ingress"])
    assert template.text(ingress["targetPort"]) == "8080"
    assert template.text(ingress["allowInsecure"]) == "false"


def test_the_image_is_non_root_pinned_and_installs_the_service_extra() -> None:
    text = (REPO / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?( AS \w+)?", b)
                         or re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", b) for b in bases)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "pip install --require-hashes -r locks/service.txt" in text
    assert "pip install --no-deps ." in text
    lock = (REPO / "locks" / "service.txt").read_text()
    assert "azure-storage-queue==" in lock and "azure-data-tables==" in lock
    assert 'ENTRYPOINT ["mlgate", "serve"' in text
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", spec)[0] for spec in extras["service"]}
    assert {"azure-storage-queue", "azure-data-tables"} <= names


def hadolint(text: str) -> list[dict[str, object]]:
    """hadolint's findings on a Dockerfile given as text (read from stdin), every level down to style;
    a Dockerfile it cannot parse is one finding, DL1000."""
    done = subprocess.run(
        [tool("hadolint"), "--no-color", "--format", "json", "--no-fail", "-"],
        input=text, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return findings


def test_hadolint_has_no_findings_on_the_image_definition() -> None:
    """The image cannot be built here (no container daemon, no base image), so it is linted: hadolint
    parses the Dockerfile as Docker does and applies its rules (pinned tags, non-root last USER, pip
    without a cache, JSON-form ENTRYPOINT, shellcheck on every RUN) at every level, style included."""
    assert hadolint((REPO / "Dockerfile").read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("FROM python:3.11.7-slim-bookworm AS build", "FROM python:latest AS build", "DL3007"),
        ("USER 10001:10001", "USER root", "DL3002"),
        ('ENTRYPOINT ["mlgate", "serve", "--host", "0.0.0.0", "--port", "8080"]',
         "ENTRYPOINT mlgate serve --host 0.0.0.0 --port 8080", "DL3025"),
        ("WORKDIR /src\n", "", "DL3045"),
        ("RUN groupadd", "RUN [ groupadd", "SC1072"),
        ("EXPOSE 8080", "EXPOS 8080", "DL1000"),
    ],
    ids=["latest-tag", "root-user", "shell-entrypoint", "relative-copy", "shell-syntax", "unknown-instruction"],
)
def test_hadolint_catches_a_broken_image_definition(old: str, new: str, code: str) -> None:
    text = (REPO / "Dockerfile").read_text()
    assert old in text
    assert code in {finding["code"] for finding in hadolint(text.replace(old, new))}
