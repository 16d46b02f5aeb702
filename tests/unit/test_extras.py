"""A command that needs an optional SDK which is not installed exits 2 naming the extra (mlgate/extras.py)."""

from __future__ import annotations

import sys

import pytest

from mlgate.cli import main
from mlgate.errors import EXIT_USAGE
from mlgate.extras import MODULES, missing_extra


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("azure.identity", "azure"),
        ("msal", "azure"),
        ("waitress.server", "service"),
        ("github", "github"),
        ("boto3", "s3"),
        ("azure.storage.queue", "service"),
        ("azure.data.tables", "service"),
        ("azure.storage.blob", "azure"),
    ],
)
def test_a_missing_optional_module_names_its_extra_and_lock(module: str, extra: str) -> None:
    error = missing_extra(ModuleNotFoundError(f"No module named {module!r}", name=module))
    assert error is not None and error.exit_code == EXIT_USAGE
    text = error.diagnostics()
    assert f"'{extra}' extra" in text and f"locks/{extra}.txt" in text and "py3-none-any.whl" in text


def test_any_other_missing_module_is_not_an_extra() -> None:
    assert missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope")) is None
    assert missing_extra(ModuleNotFoundError("no name")) is None
    assert set(MODULES) >= {"azure", "github", "waitress", "boto3"}


def test_secrets_without_the_azure_sdk_exits_2_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def ours(name: str) -> bool:
        return name == "azure" or name.startswith(("azure.", "mlgate.secrets"))

    import mlgate

    before = {name: module for name, module in sys.modules.items() if ours(name)}
    package = getattr(mlgate, "secrets", None)
    for name in before:
        del sys.modules[name]
    sys.modules["azure"] = None  # type: ignore[assignment]  # `import azure...` raises ModuleNotFoundError
    try:
        code = main(["secrets", "--vault", "kv-test", "--secrets", "a", "--platform", "local"])
    finally:
        # put back exactly what was there: drop what the run imported anew, and the `mlgate.secrets` attribute
        # the fresh import set on the package (a stale one breaks a later `mlgate.secrets.keyvault` lookup)
        for name in [m for m in sys.modules if ours(m)]:
            del sys.modules[name]
        sys.modules.update(before)
        if package is None:
            if hasattr(mlgate, "secrets"):
                delattr(mlgate, "secrets")
        else:
            mlgate.secrets = package  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "mlgate's optional 'azure' extra" in err and "internal error" not in err and "Traceback" not in err
