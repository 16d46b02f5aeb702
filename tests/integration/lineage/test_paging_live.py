"""Artifact listings over more than one page.

The open-source server answers a whole directory in one listing; hosted MLflow services page
them with ``next_page_token``. A thin loopback proxy in front of the real server cuts every
listing into pages of two entries (everything else passes through untouched), so the client's
paging runs against real answers.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
import requests

from mlgate.gate import evaluate
from mlgate.lineage import artifacts
from mlgate.lineage.mlflow import MlflowClient

from .conftest import Built

PAGE = 2


def _is_listing(path: str) -> bool:
    return path.endswith("/artifacts/directories") or path == "/api/2.0/mlflow-artifacts/artifacts"


def paging_proxy(upstream: str) -> http.server.ThreadingHTTPServer:
    class Proxy(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            token = query.pop("page_token", ["0"])[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            url = upstream + parts.path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
            answer = requests.request(self.command, url, data=body, headers=headers, timeout=30)
            payload = answer.content
            if self.command == "GET" and _is_listing(parts.path) and answer.status_code == 200:
                doc = answer.json()
                start = int(token)
                files = doc.get("files", [])
                doc["files"] = files[start:start + PAGE]
                if start + PAGE < len(files):
                    doc["next_page_token"] = str(start + PAGE)
                payload = json.dumps(doc).encode()
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        def log_message(self, format: str, *args: object) -> None:
            return None

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)


@pytest.fixture()
def paged_uri(mlflow_server: str) -> Iterator[str]:
    server = paging_proxy(mlflow_server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_listing_over_several_pages_gives_the_same_manifest(
    paged_uri: str, mlflow_server: str, sealed: dict[str, Built]
) -> None:
    traced = sealed["traced"]
    paged = MlflowClient.from_env(paged_uri)
    version = paged.resolve(traced.ref)
    manifest, where = artifacts.seal_from_store(paged, version)
    direct, _ = artifacts.seal_from_store(MlflowClient.from_env(mlflow_server), version)
    assert manifest.digest == direct.digest
    assert sorted(manifest.subjects) == sorted(traced.files)
    # root (3 entries: 2 pages), data (3 dirs: 2 pages), each part dir (2 files: 1 page)
    assert paged.request_counts["/logged-models/{id}/artifacts/directories"] == 2 + 2 + 3
    proxied = list(paged.list_proxied_artifacts(where.root))
    assert sorted(f.path for f in proxied) == ["MLmodel", "data", "requirements.txt"]
    assert paged.request_counts["mlflow-artifacts list"] == 2


def test_gate_through_paged_listings(paged_uri: str, sealed: dict[str, Built], policy_file: object,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", paged_uri)
    outcome = evaluate(sealed["traced"].ref, policy_path=str(policy_file))
    assert outcome.passed, outcome.summary
    assert outcome.evidence.document["manifest"]["integrity"]["files_checked"] == len(sealed["traced"].files)
