"""The Azure ML store against the loopback workspace API (shapes from the plugin's REST client) and Azurite.

No Azure ML server can run here, so ``seal --model`` end to end is out of reach; these tests drive
what it runs on this back-end: list the model's files, stream and hash them from the SAS URLs,
store the manifest through ``batch/metadata`` and load it back by its URI, then tampering, and
each hostile answer (403, 429, 5xx, garbage, a SAS URL elsewhere, endless paging, a path escaping
the root), with canary secrets proving neither the token nor a SAS signature is ever printed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest

from mlgate import redact
from mlgate.errors import Error, RefusedError
from mlgate.integrity.manifest import Manifest
from mlgate.lineage import artifacts
from mlgate.lineage.azure_clouds import CLOUDS, PUBLIC
from mlgate.lineage.mlflow import MlflowClient, _BearerAuth
from mlgate.lineage.records import ModelVersion
from mlgate.stores.azureml import AzureMLStore, parse_location
from mlgate.stores.interface import StoreError, open_store
from tests.fakes.azureml import FakeAzureML
from tests.integration.ledger.conftest import Azurite, azurite  # noqa: F401  (the session's emulator)

TOKEN = "CANARY-aad-token-3f9a"
FILES = {"model/MLmodel": b"flavors: {}\n", "model/model.pkl": b"\x80\x04weights" * 5000,
         "model/sub/conda.yaml": b"name: env\n"}


@pytest.fixture
def fake(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureML]:  # noqa: F811
    for name in ("MLFLOW_TRACKING_TOKEN", "MLGATE_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    workspace = FakeAzureML(azurite.connection_string)
    workspace.token = TOKEN
    for path, data in FILES.items():
        workspace.put("run1", path, data)
    workspace.put("run1", "metrics/loss.json", b"{}")  # another artifact of the run, not the model's
    with workspace.server:
        yield workspace
    for path in workspace.paths("run1"):
        workspace.delete("run1", path)
    assert workspace.violations == []


def _client(fake: FakeAzureML) -> MlflowClient:
    client = MlflowClient(fake.tracking_base(), auth=_BearerAuth(TOKEN))
    client.azure_cloud = PUBLIC
    redact.register(TOKEN)
    return client


def _store(fake: FakeAzureML, path: str = "model") -> AzureMLStore:
    store = open_store(fake.location("exp1", "run1", path), _client(fake), what="the files of m/1")
    assert isinstance(store, AzureMLStore)
    return store


def _files(store: AzureMLStore) -> artifacts.ModelFiles:
    return artifacts.ModelFiles(store=store, root=store.where.prefix, model_id=None)


def _assert_quiet(exc: BaseException, *secrets: str) -> None:
    text = exc.diagnostics() if isinstance(exc, Error) else str(exc)
    for secret in (TOKEN, *secrets):
        assert secret not in text


def test_files_are_listed_hashed_and_the_manifest_round_trips(fake: FakeAzureML) -> None:
    where = _files(_store(fake))
    listing = artifacts.list_files(None, where)
    assert listing == {"MLmodel": -1, "model.pkl": -1, "sub/conda.yaml": -1}  # the API gives no sizes
    digests, total = artifacts.hash_files(None, where, sorted(listing))
    assert digests == {k.removeprefix("model/"): hashlib.sha256(v).hexdigest() for k, v in FILES.items()}
    assert total == sum(len(v) for v in FILES.values())
    manifest = Manifest.build(digests, total, follow_internal_symlinks=False)
    uri = artifacts.store_manifest(_client(fake), where, manifest)
    assert uri == fake.location("exp1", "run1", f"mlgate-manifests/{manifest.digest}.json")
    assert f"mlgate-manifests/{manifest.digest}.json" in fake.paths("run1")  # next to the model, not inside
    version = ModelVersion(name="m", version="1", tags={artifacts.TAG_SHA256: manifest.digest, artifacts.TAG_URI: uri})
    assert artifacts.load_manifest(_client(fake), version).digest == manifest.digest
    assert len(fake.server.of("run_artifacts.batch_create_empty_artifacts")) == 1


def test_a_changed_added_and_removed_file_are_all_seen(fake: FakeAzureML) -> None:
    where = _files(_store(fake))
    before = artifacts.hash_files(None, where, sorted(artifacts.list_files(None, where)))[0]
    fake.put("run1", "model/model.pkl", b"poisoned")
    fake.put("run1", "model/extra.py", b"import os")
    fake.delete("run1", "model/sub/conda.yaml")
    listing = artifacts.list_files(None, where)
    after = artifacts.hash_files(None, where, sorted(listing))[0]
    assert set(after) ^ set(before) == {"extra.py", "sub/conda.yaml"}
    assert after["model.pkl"] != before["model.pkl"]


def test_listing_follows_next_links_page_by_page(fake: FakeAzureML) -> None:
    fake.page_size = 1
    assert set(artifacts.list_files(None, _files(_store(fake)))) == {"MLmodel", "model.pkl", "sub/conda.yaml"}
    assert len(fake.server.of("run_artifacts.list_in_container")) == 4  # 4 artifacts of the run, one a page


@pytest.mark.parametrize(("fault", "says"), [
    (403, "access refused (HTTP 403)"),
    (401, "access refused (HTTP 401)"),
    (429, "kept throttling (HTTP 429)"),
    (503, "answered HTTP 503"),
    (500, "answered HTTP 500"),
    ("garbage", "not its artifact API"),
])
def test_a_failing_workspace_is_exit_3_naming_the_run_and_identity(fake: FakeAzureML, fault: int | str,
                                                                    says: str) -> None:
    fake.fault = fault
    with pytest.raises(StoreError) as caught:
        artifacts.list_files(None, _files(_store(fake)))
    assert caught.value.exit_code == 3
    message = caught.value.message
    assert says in message and "run run1 of experiment exp1 in workspace ws" in message
    assert "DefaultAzureCredential" in message
    _assert_quiet(caught.value)


@pytest.mark.parametrize("uri", [
    "https://evil.example.com/azureml/model.pkl?sv=1&sig=CANARY-sig-1",
    "https://acct.blob.core.chinacloudapi.cn/azureml/model.pkl?sig=CANARY-sig-1",  # another cloud's storage
    "http://files.example.com/azureml/model.pkl?sig=CANARY-sig-1",  # plain http off loopback
    "ftp://acct.blob.core.windows.net/a/b?sig=CANARY-sig-1",
])
def test_a_content_url_that_is_not_this_clouds_blob_storage_is_refused(fake: FakeAzureML, uri: str) -> None:
    fake.content_uri = uri
    with pytest.raises(StoreError, match="not a blob of AzureCloud's storage") as caught:
        b"".join(_store(fake).open("model.pkl"))
    _assert_quiet(caught.value, "CANARY-sig-1", "sv=1")


def test_a_sas_signature_is_never_printed_when_the_blob_read_fails(fake: FakeAzureML) -> None:
    fake.delete("run1", "model/model.pkl")  # contentinfo still answers a SAS URL; the blob is gone
    store = _store(fake)
    with pytest.raises(RefusedError) as caught:
        b"".join(store.open("model.pkl"))
    assert "not found" in caught.value.message
    sas = fake.server.of("run_artifacts.get_content_information")
    assert sas and "?" not in caught.value.diagnostics()
    _assert_quiet(caught.value)


def test_paging_that_never_ends_is_refused(fake: FakeAzureML) -> None:
    fake.page_size = 1
    fake.next_link = (f"{fake.server.url}/history/v1.0/subscriptions/sub/resourceGroups/rg/providers/"
                      "Microsoft.MachineLearningServices/workspaces/ws/experiments/exp1/runs/run1/artifacts"
                      "?continuationToken=1")  # the same link on every page
    with pytest.raises(StoreError, match="same next page twice"):
        artifacts.list_files(None, _files(_store(fake)))


def test_a_next_link_to_another_host_is_refused(fake: FakeAzureML) -> None:
    fake.page_size = 1
    fake.next_link = "https://elsewhere.example.com/history/v1.0/page2"
    with pytest.raises(StoreError, match=re.escape("next page is on https://elsewhere.example.com/history/v1.0/page2")):
        artifacts.list_files(None, _files(_store(fake)))


@pytest.mark.parametrize("path", ["model/../../other-run/secret", "model/./x", "model//x", "model\\..\\x", "/etc/x"])
def test_a_listed_path_escaping_the_artifact_root_is_refused(fake: FakeAzureML, path: str) -> None:
    fake.extra_paths = [path]
    with pytest.raises(StoreError, match="outside the artifact root"):
        artifacts.list_files(None, _files(_store(fake)))


def test_locations_decompose_as_the_plugin_does() -> None:
    base = ("https://eastus.api.azureml.ms/mlflow/v2.0/subscriptions/s/resourceGroups/g/providers/"
            "Microsoft.MachineLearningServices/workspaces/w")
    ws = "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"
    full = parse_location(f"azureml://eastus.api.azureml.ms/mlflow/v2.0{ws}/experiments/e/runs/r/artifacts/"
                          "a/runs/b", base)
    assert full.api == f"https://eastus.api.azureml.ms/history/v1.0{ws}/experiments/e/runs/r/artifacts"
    assert full.path == "a/runs/b"
    short = parse_location("azureml://experiments/e2/runs/r2/artifacts/model", base)
    assert (short.api.rsplit(ws, 1)[1], short.path) == ("/experiments/e2/runs/r2/artifacts", "model")
    assert parse_location("azureml://experiments/e2/runs/r2", base).prefix == \
        "azureml://experiments/e2/runs/r2/artifacts"
    upload = parse_location("azureml://artifacts/LocalUpload/abc123/model", base)
    assert upload.api == f"https://eastus.api.azureml.ms/artifact/v2.0{ws}/artifacts/LocalUpload/abc123"
    assert (upload.path, upload.prefix) == ("model", "azureml://artifacts/LocalUpload/abc123")
    for bad in ("azureml://experiments/e/runs/r/artifacts/../x", "azureml://x/only", "azureml://a/b/c?sig=1"):
        with pytest.raises(Error, match="not an Azure ML artifact location"):
            parse_location(bad, base)


def test_a_location_without_an_azureml_tracking_uri_says_what_to_set() -> None:
    client = MlflowClient("http://127.0.0.1:5000")
    with pytest.raises(Error, match="MLFLOW_TRACKING_URI is not that workspace's azureml:// URI") as caught:
        open_store("azureml://experiments/e/runs/r/artifacts/model", client, what="the files of m/1")
    assert caught.value.exit_code == 2


def test_each_cloud_accepts_only_its_own_blob_hosts() -> None:
    assert [c.storage_suffix for c in CLOUDS] == ["core.windows.net", "core.chinacloudapi.cn",
                                                  "core.usgovcloudapi.net"]
