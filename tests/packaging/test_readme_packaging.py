"""The README documents every input of the action and of the Azure DevOps task, and every template."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.packaging.conftest import ROOT, TASK_DIR

pytestmark = pytest.mark.packaging

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_first_column(text: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", text, re.M))


def test_every_action_input_is_documented() -> None:
    inputs = set(yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))["inputs"])
    assert table_first_column(section("Use in GitHub Actions")) >= inputs
    documented = {c for c in table_first_column(section("Use in GitHub Actions")) if "." not in c}
    assert documented == inputs, "README lists inputs the action does not have"


def test_every_task_input_is_documented() -> None:
    task = json.loads((TASK_DIR / "task.json").read_text(encoding="utf-8"))
    names = {i["name"] for i in task["inputs"]}
    documented = {c for c in table_first_column(section("Use in Azure DevOps")) if "." not in c}
    assert documented == names


def test_every_template_is_documented() -> None:
    places = (
        (ROOT / ".github" / "workflows", "mlgate-*.yml", "Use in GitHub Actions"),
        (ROOT / "templates" / "github" / "examples", "*.yml", "Use in GitHub Actions"),
        (ROOT / "templates" / "azure-pipelines", "*.yml", "Use in Azure DevOps"),
    )
    for folder, pattern, title in places:
        text = section(title)
        paths = list(folder.glob(pattern))
        assert paths, f"no {pattern} in {folder.name}"
        for path in paths:
            assert f"`{path.name}`" in text or f"/{path.name}`" in text, f"{path.name} is not described under {title}"


def test_azure_template_parameters_are_documented() -> None:
    text = section("Use in Azure DevOps")
    for path in (ROOT / "templates" / "azure-pipelines").glob("*.yml"):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for parameter in document.get("parameters", []):
            assert f"`{parameter['name']}`" in text, (
                f"{path.name}: parameter {parameter['name']} undocumented"
            )


def test_approval_check_configuration_covers_both_platforms() -> None:
    text = section("Approval checks")
    for needle in ("Invoke REST API", "Approvals", "Required reviewers", "Deployment protection rules"):
        assert needle in text


INDEX_INSTALL = re.compile(r"pip install\s+(?:-\S+\s+)*['\"]?mlgate(?:[=<>\[\s'\"]|$)", re.M)


def test_nothing_installs_mlgate_by_name_from_an_index() -> None:
    """Until the name is published, every install is the release wheel or a pinned commit, with hashes."""
    shipped = [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "azure-pipelines-task" / "overview.md",
        ROOT / "action.yml",
        *(ROOT / "templates").rglob("*.yml"),
        *(ROOT / "src").rglob("*.py"),
    ]
    for path in shipped:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not INDEX_INSTALL.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
    install = section("Install")
    for needle in (
        "release wheel",
        "pinned commit",
        "--require-hashes",
        "pip install --no-deps ./mlgate-",
        "gh attestation verify",
    ):
        assert needle in install, needle


def test_the_index_install_pattern_is_real() -> None:
    for line in (
        "pip install mlgate",
        "RUN pip install --no-cache-dir mlgate",
        "pip install 'mlgate[s3]'",
        "python -m pip install mlgate==1.0.0",
    ):
        assert INDEX_INSTALL.search(line), line
    for line in ("pip install --no-deps ./mlgate-1.0.0-py3-none-any.whl", "pip install -r locks/azure.txt"):
        assert not INDEX_INSTALL.search(line), line
