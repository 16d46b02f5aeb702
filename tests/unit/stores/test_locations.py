"""Artifact-store locations: which back-end a URI picks, and how Azure Blob URIs are read."""

from __future__ import annotations

import pytest
from azure.core.rest import HttpRequest

from mlgate.errors import UsageError
from mlgate.http import make_session
from mlgate.lineage.mlflow import MlflowClient
from mlgate.stores import azure_names
from mlgate.stores.azure_blob import BlobStore, OriginTransport
from mlgate.stores.interface import StoreError, open_store, split_location
from mlgate.stores.mlflow_proxy import ProxyStore

CLIENT = MlflowClient("http://127.0.0.1:5000", session=make_session(total_retries=0))


@pytest.mark.parametrize(("uri", "account_url", "container", "path", "prefix"), [
    ("wasbs://c01@acct.blob.core.windows.net/a/b", "https://acct.blob.core.windows.net", "c01", "a/b",
     "wasbs://c01@acct.blob.core.windows.net"),
    ("wasb://c01@acct.blob.core.chinacloudapi.cn/a", "https://acct.blob.core.chinacloudapi.cn", "c01", "a",
     "wasb://c01@acct.blob.core.chinacloudapi.cn"),
    ("abfss://c01@acct.dfs.core.windows.net/a/b/", "https://acct.blob.core.windows.net", "c01", "a/b",
     "abfss://c01@acct.dfs.core.windows.net"),
    ("https://acct.dfs.core.usgovcloudapi.net/c01/x", "https://acct.blob.core.usgovcloudapi.net", "c01", "x",
     "https://acct.dfs.core.usgovcloudapi.net/c01"),
    ("http://127.0.0.1:10000/devstoreaccount1/c01/m/x", "http://127.0.0.1:10000/devstoreaccount1", "c01", "m/x",
     "http://127.0.0.1:10000/devstoreaccount1/c01"),
])
def test_blob_uris_are_parsed(uri: str, account_url: str, container: str, path: str, prefix: str) -> None:
    where = azure_names.parse(uri)
    assert (where.account_url, where.container, where.path, where.prefix) == (account_url, container, path, prefix)
    assert where.uri("z") == prefix + "/z"


@pytest.mark.parametrize("uri", [
    "wasbs://acct.blob.core.windows.net/a",  # no container
    "wasbs://c01@acct.blob.evil.example/a",  # not an Azure storage host
    "https://acct.blob.core.windows.net/c01/a?sig=x",  # a SAS in the location
    "http://10.0.0.1:10000/devstoreaccount1/c01/a",  # the emulator form off loopback
    "wasbs://Bad_Name@acct.blob.core.windows.net/a",
])
def test_malformed_blob_uris_are_usage_errors(uri: str) -> None:
    with pytest.raises(UsageError, match="not an Azure Blob location"):
        azure_names.parse(uri)


def test_the_back_end_follows_the_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_KEY", "a2V5")
    assert isinstance(open_store("mlflow-artifacts:/1/m", CLIENT, what="x"), ProxyStore)
    assert isinstance(open_store("http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/m", CLIENT, what="x"),
                      ProxyStore)
    assert isinstance(open_store("wasbs://c01@acct.blob.core.windows.net/1/m", CLIENT, what="x"), BlobStore)
    assert isinstance(open_store("https://acct.blob.core.windows.net/c01/1/m", CLIENT, what="x"), BlobStore)
    assert open_store("file:///tmp/m", CLIENT, what="x") is None
    assert open_store("gs://bucket/m", CLIENT, what="x") is None
    assert split_location("wasbs://c01@acct.blob.core.windows.net/d/f.json") == (
        "wasbs://c01@acct.blob.core.windows.net/d", "f.json")


def test_an_access_key_names_the_account_never_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_KEY", "c2VjcmV0LWtleQ==")
    store = open_store("wasbs://c01@acct.blob.core.windows.net/1/m", CLIENT, what="x")
    assert isinstance(store, BlobStore)
    assert store.identity == "the account key of acct (AZURE_STORAGE_ACCESS_KEY)"
    assert "c2VjcmV0" not in store.identity + store.shown


def test_requests_off_the_stores_origin_are_refused() -> None:
    transport = OriginTransport("https://acct.blob.core.windows.net", "container c01 of account acct", "a key")
    with pytest.raises(StoreError, match="another origin") as info:
        transport.send(HttpRequest("GET", "https://elsewhere.example/c01/x"))
    assert info.value.exit_code == 3


def test_s3_locations_follow_mlflows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.stores.s3 import S3Store, open_s3_store

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "c2VjcmV0LXMz")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    store = open_store("s3://bucket/1/models/m-1/artifacts", CLIENT, what="x")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.path) == ("bucket", "1/models/m-1/artifacts")
    assert store.shown == "bucket bucket at http://127.0.0.1:9000"
    assert store.identity == "AWS credentials from env" and "c2VjcmV0" not in store.shown + store.identity
    for bad in ("s3:///key", "s3://user@bucket/key", "s3://bucket/key?versionId=1"):
        with pytest.raises(UsageError, match="not an S3 location"):
            open_s3_store(bad)
