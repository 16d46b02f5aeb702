"""The service's container image and Azure Container Apps template, checked for what can be checked here.

The `bicep` CLI is not installable on this project's machines (it ships on no registry they
reach), so the template is not compiled here: these tests read its text and hold it to the
roles, settings and shape the README promises. `az bicep build` on a workstation is the real
validation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from mlgate.service.config import SECRET_KEYS, SETTINGS

pytestmark = pytest.mark.packaging
REPO = Path(__file__).resolve().parents[2]
BICEP = REPO / "deploy" / "azure-container-apps" / "main.bicep"
ROLES = {  # the built-in role definitions the service needs, and nothing else
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "storage",  # Storage Queue Data Contributor
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "storage",  # Storage Table Data Contributor
    "4633458b-17de-408a-b874-0445c86b69e6": "vault",  # Key Vault Secrets User
}


def _resources(text: str) -> dict[str, tuple[str, str]]:
    """symbolic name -> (type@version, body) of each top-level resource."""
    found = {}
    for match in re.finditer(r"^resource (\w+) '([^']+)'(?: existing)? = \{\n(.*?)^\}", text, re.M | re.S):
        found[match.group(1)] = (match.group(2), match.group(3))
    return found


def test_the_identity_gets_exactly_the_three_roles_on_their_resources() -> None:
    text = BICEP.read_text()
    variables = dict(re.findall(r"^var (\w+) = '([0-9a-f-]{36})'", text, re.M))
    assignments = [(body, kind) for body, kind in ((b, t) for t, b in _resources(text).values())
                   if kind.startswith("Microsoft.Authorization/roleAssignments@")]
    assert len(assignments) == 3
    seen = {}
    for body, _ in assignments:
        role_var = re.search(r"roleDefinitions', (\w+)\)", body)
        scope = re.search(r"^\s*scope: (\w+)$", body, re.M)
        assert role_var and scope, body
        assert "principalId: identity.properties.principalId" in body
        seen[variables[role_var.group(1)]] = scope.group(1)
    assert seen == ROLES
    assert text.count("'Microsoft.ManagedIdentity/userAssignedIdentities@") == 1
    assert "type: 'UserAssigned'" in text and "'${identity.id}': {}" in text


def test_every_setting_the_template_passes_is_one_mlgate_serve_reads() -> None:
    text = BICEP.read_text()
    names = set(re.findall(r"name: 'MLGATE_SERVE_(\w+)'", text))
    known = {key.upper() for key in SETTINGS} | {f"{key}_FILE".upper() for key in SECRET_KEYS}
    assert names and names <= known, sorted(names - known)
    assert {"STATE", "STATE_STORAGE_ACCOUNT", "STATE_IDENTITY", "STATE_CLIENT_ID", "KEY_VAULT"} <= names
    assert not re.search(r"name: 'MLGATE_SERVE_(AZURE_DEVOPS_KEY|GITHUB_WEBHOOK_SECRET|GITHUB_PRIVATE_KEY)'", text), (
        "a secret value in the app's settings: name its Key Vault secret instead")
    assert "minReplicas: minReplicas" in text and "targetPort: 8080" in text


def test_braces_and_brackets_balance() -> None:
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", BICEP.read_text())  # strings out
    text = re.sub(r"//[^\n]*", "", text)
    for opening, closing in ("{}", "[]", "()"):
        assert text.count(opening) == text.count(closing), opening


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
