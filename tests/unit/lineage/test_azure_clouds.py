"""Azure ML tracking URIs: /mlflow/v2.0 as the plugin speaks it, and each cloud's token scope and authority."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from mlgate.errors import UsageError
from mlgate.lineage.azure_clouds import cloud_for
from mlgate.lineage.mlflow import MlflowClient, rewrite_tracking_uri

WS = "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"


@pytest.mark.parametrize(("uri", "base"), [
    (f"azureml://eastus.api.azureml.ms/mlflow/v1.0{WS}", f"https://eastus.api.azureml.ms/mlflow/v2.0{WS}"),
    (f"azureml://eastus.api.azureml.ms/mlflow/v2.0{WS}?", f"https://eastus.api.azureml.ms/mlflow/v2.0{WS}"),
    (f"azureml://chinaeast2.api.ml.azure.cn/mlflow/v1.0{WS}/", f"https://chinaeast2.api.ml.azure.cn/mlflow/v2.0{WS}"),
    ("azureml://h/other/mlflow/v1.0/x", "https://h/other/mlflow/v1.0/x"),  # only a leading /mlflow/v1.0
])
def test_the_tracking_uri_becomes_the_plugins_v2_rest_base(uri: str, base: str) -> None:
    assert rewrite_tracking_uri(uri) == (base, True)


@pytest.mark.parametrize(("host", "scope", "authority", "storage"), [
    ("westeurope.api.azureml.ms", "https://management.azure.com/.default", "login.microsoftonline.com",
     "core.windows.net"),
    ("0c1e.workspace.chinaeast2.api.ml.azure.cn", "https://management.chinacloudapi.cn/.default",
     "login.chinacloudapi.cn", "core.chinacloudapi.cn"),
    ("usgovvirginia.api.ml.azure.us", "https://management.usgovcloudapi.net/.default", "login.microsoftonline.us",
     "core.usgovcloudapi.net"),
    ("127.0.0.1", "https://management.azure.com/.default", "login.microsoftonline.com", "core.windows.net"),
])
def test_the_cloud_follows_the_tracking_host(host: str, scope: str, authority: str, storage: str) -> None:
    cloud = cloud_for(host, {})
    assert (cloud.scope, cloud.authority, cloud.storage_suffix) == (scope, authority, storage)


def test_azureml_current_cloud_wins_and_an_unknown_name_is_a_usage_error() -> None:
    assert cloud_for("eastus.api.azureml.ms", {"AZUREML_CURRENT_CLOUD": "AzureUSGovernment"}).name == \
        "AzureUSGovernment"
    with pytest.raises(UsageError, match="AZUREML_CURRENT_CLOUD names no Azure cloud") as caught:
        cloud_for("eastus.api.azureml.ms", {"AZUREML_CURRENT_CLOUD": "AzureGermanCloud"})
    assert "AzureChinaCloud" in (caught.value.hint or "")


class _Token:
    token, expires_on = "aad-token", 4_000_000_000


class _Credential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> _Token:
        self.scopes.extend(scopes)
        return _Token()


@responses.activate
def test_a_china_workspace_is_asked_with_the_china_scope() -> None:
    base = f"https://chinaeast2.api.ml.azure.cn/mlflow/v2.0{WS}"
    responses.get(base + "/api/2.0/mlflow/runs/get", json={"run": {"info": {}}})
    cred = _Credential()
    client = MlflowClient.from_env(environ={"MLFLOW_TRACKING_URI": f"azureml://chinaeast2.api.ml.azure.cn/mlflow/"
                                            f"v1.0{WS}"}, credential=cred)
    client.get_run("r1")
    assert cred.scopes == ["https://management.chinacloudapi.cn/.default"]
    assert client.azure_cloud is not None and client.azure_cloud.name == "AzureChinaCloud"


def test_the_default_credential_signs_in_at_the_clouds_authority(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.identity

    made: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", Recorder)
    MlflowClient.from_env(environ={"MLFLOW_TRACKING_URI": f"azureml://usgovvirginia.api.ml.azure.us/mlflow/v1.0{WS}"})
    MlflowClient.from_env(environ={"MLFLOW_TRACKING_URI": f"azureml://usgovvirginia.api.ml.azure.us/mlflow/v1.0{WS}",
                                   "AZURE_AUTHORITY_HOST": "login.example.test"})
    assert [m.get("authority") for m in made] == ["login.microsoftonline.us", "login.example.test"]
    assert all(m["exclude_interactive_browser_credential"] for m in made)


@pytest.mark.parametrize(("uri", "says"), [
    ("databricks", "a Databricks workspace through a CLI profile"),
    ("databricks://prod-profile", "a Databricks workspace through a CLI profile"),
    ("databricks-uc", "the Unity Catalog model registry"),
    ("databricks-uc://prod-profile", "the Unity Catalog model registry"),
])
def test_databricks_tracking_uris_say_what_works_instead(uri: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        rewrite_tracking_uri(uri)
    assert caught.value.exit_code == 2 and says in caught.value.message
    assert "scheme" not in caught.value.message
    hint = caught.value.hint or ""
    assert "MLFLOW_TRACKING_URI=https://<workspace host>" in hint and "mlgate seal DIR" in hint
