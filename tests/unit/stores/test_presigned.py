"""The presigned-download client: which links are accepted, what is sent to the store, how the body is capped."""

from __future__ import annotations

import pytest
import responses

from mlgate.errors import NetworkError
from mlgate.lineage.mlflow import MlflowClient

BASE = "http://127.0.0.1:5000"
TOKEN = "canary-mlflow-token-91c2"
INFO = f"{BASE}/api/3.0/mlflow/server-info"
LINK = f"{BASE}/api/2.0/mlflow-artifacts/presigned/1/m/model.bin"
STORE = "https://bucket.s3.example.net/1/m/model.bin?X-Amz-Signature=abc"


def _client() -> MlflowClient:
    return MlflowClient.from_env(environ={"MLFLOW_TRACKING_URI": BASE, "MLFLOW_TRACKING_TOKEN": TOKEN})


def _read(client: MlflowClient) -> bytes:
    return b"".join(client.stream_artifact("1/m/model.bin"))


@responses.activate
def test_the_bytes_come_from_the_store_without_our_token() -> None:
    responses.get(INFO, json={"multipart_downloads_enabled": True})
    responses.get(LINK, json={"url": STORE, "headers": {"x-amz-request-payer": "requester"}, "file_size": 5})
    responses.get(STORE.split("?")[0], body=b"hello")
    assert _read(_client()) == b"hello"
    to_store = responses.calls[-1].request
    assert "Authorization" not in to_store.headers
    assert to_store.headers["x-amz-request-payer"] == "requester"
    assert responses.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
@pytest.mark.parametrize("info", [{"multipart_downloads_enabled": False}, {}, None])
def test_without_the_feature_the_proxy_serves_the_file(info: dict[str, bool] | None) -> None:
    if info is None:
        responses.get(INFO, status=404)
    else:
        responses.get(INFO, json=info)
    responses.get(f"{BASE}/api/2.0/mlflow-artifacts/artifacts/1/m/model.bin", body=b"proxied")
    assert _read(_client()) == b"proxied"


@responses.activate
def test_a_link_without_a_size_is_read_through_the_proxy() -> None:
    responses.get(INFO, json={"multipart_downloads_enabled": True})
    responses.get(LINK, json={"url": STORE, "headers": {}})
    responses.get(f"{BASE}/api/2.0/mlflow-artifacts/artifacts/1/m/model.bin", body=b"proxied")
    assert _read(_client()) == b"proxied"


@responses.activate
@pytest.mark.parametrize(("answer", "says"), [
    ({"url": "http://bucket.example.net/x", "file_size": 1}, "only https, or http on loopback"),
    ({"url": "https://user:pw@bucket.example.net/x", "file_size": 1}, "without user-info"),
    ({"url": "ftp://bucket.example.net/x", "file_size": 1}, "only https"),
    ({"url": STORE, "headers": {"Authorization": "x"}, "file_size": 1}, "headers mlgate does not send"),
    ({"url": STORE, "headers": {"x-a": "b\r\nInjected: 1"}, "file_size": 1}, "headers mlgate does not send"),
])
def test_links_mlgate_does_not_fetch(answer: dict[str, object], says: str) -> None:
    responses.get(INFO, json={"multipart_downloads_enabled": True})
    responses.get(LINK, json=answer)
    with pytest.raises(NetworkError, match=says) as caught:
        _read(_client())
    assert "pw" not in str(caught.value) and "Signature" not in str(caught.value)
    assert len(responses.calls) == 2  # the store was never asked


@responses.activate
@pytest.mark.parametrize(("size", "body", "says"), [
    (3, b"hello", "sent more than the 3 bytes"),
    (9, b"hello", "ended after 5 of 9 bytes"),
])
def test_the_announced_size_caps_the_body(size: int, body: bytes, says: str) -> None:
    responses.get(INFO, json={"multipart_downloads_enabled": True})
    responses.get(LINK, json={"url": STORE, "file_size": size})
    responses.get(STORE.split("?")[0], body=body)
    with pytest.raises(NetworkError, match=says):
        _read(_client())


@responses.activate
def test_a_store_error_is_exit_3_without_the_signature() -> None:
    responses.get(INFO, json={"multipart_downloads_enabled": True})
    responses.get(LINK, json={"url": STORE, "file_size": 5})
    responses.get(STORE.split("?")[0], status=403)
    with pytest.raises(NetworkError, match="answered 403") as caught:
        _read(_client())
    assert caught.value.exit_code == 3 and "Signature" not in str(caught.value)
