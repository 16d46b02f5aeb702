"""Loopback fakes of Azure Key Vault and the identity endpoints it needs, over TLS.

Two real threaded HTTPS servers on 127.0.0.1 (certificates from ``trustme``):

* **vault**: Key Vault's data plane as documented: an unauthenticated request gets
  ``401`` with ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"``; a bearer token from the login server then gets secret
  bundles, ``GET /secrets`` pages with ``nextLink``, and the documented ``{"error": {...}}`` bodies
  for 403 (access policy / RBAC / firewall / disabled secret), 404 and 429 (with ``Retry-After``).
  The keys API too: ``POST /keys/NAME/create`` (``kty`` EC, ``crv`` P-256/P-384), ``GET
  /keys/NAME[/VERSION]`` (a key bundle: the public JWK, ``x``/``y`` base64url, and attributes) and
  ``POST /keys/NAME/VERSION/sign`` (``alg`` ES256/ES384 over a digest; the answer's ``value`` is
  the raw ``R||S`` signature, base64url), each with its documented permission (``keys/get``,
  ``keys/sign``, ``keys/create``) and errors (403, 404 ``KeyNotFound``, 429, 5xx).
* **login**: the App Service managed-identity endpoint (``IDENTITY_ENDPOINT`` + ``X-IDENTITY-HEADER``),
  Entra ID's v2 token endpoint (client secret or federated client assertion), the GitHub Actions
  ID token endpoint (``ACTIONS_ID_TOKEN_REQUEST_URL``) and Azure DevOps' OIDC token endpoint
  (``SYSTEM_OIDCREQUESTURI``; path and answer shape from the distributedTask 7.1 spec).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SPEC = Path(__file__).resolve().parents[2] / "specs" / "azure-devops" / "distributedTask-7.1-task.json"
VAULT_RESOURCE = "https://vault.azure.net"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
TENANT = "72f988bf-0000-4000-8000-00000000aaaa"


def jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT-shaped token (the fakes check tokens by lookup, not signature)."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{part({'sig': uuid.uuid4().hex})}"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def oidc_path_pattern() -> re.Pattern[str]:
    """The OIDC token route of the Azure DevOps spec, as a regex."""
    spec = json.loads(SPEC.read_text(encoding="utf-8-sig"))
    (template,) = [p for p in spec["paths"] if p.endswith("/oidctoken")]
    assert spec["definitions"]["TaskHubOidcToken"]["properties"] == {"oidcToken": {"type": "string"}}
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")


@dataclass
class StoredSecret:
    name: str
    value: str
    enabled: bool = True
    expires: int | None = None
    not_before: int | None = None
    version: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class StoredKey:
    """A Key Vault EC key: its versions (oldest first), each a private key that never leaves the fake."""

    name: str
    curve: str = "P-256"
    versions: list[tuple[str, Any]] = field(default_factory=list)
    key_ops: list[str] = field(default_factory=lambda: ["sign", "verify"])


CURVES = {"P-256": ("secp256r1", 32, "ES256"), "P-384": ("secp384r1", 48, "ES384")}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class App:
    """An Entra app registration / identity: who it is and what it may do in the vault."""

    client_id: str
    oid: str
    permissions: set[str] = field(default_factory=lambda: {"get", "list"})
    key_permissions: set[str] = field(default_factory=lambda: {"get", "sign"})
    client_secret: str | None = None
    federated: set[str] = field(default_factory=set)  # "github", "azure-pipelines"


@dataclass
class Hit:
    server: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    form: dict[str, list[str]]
    at: float
    body: bytes = b""


@dataclass(frozen=True)
class Raw:
    """A hostile answer sent as is: any status, headers and bytes, optionally one byte every ``trickle`` s."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"
    trickle: float = 0.0


Hostile = Callable[[Hit], "Raw | None"]


class FakeAzure:
    def __init__(self, server_pem: Path) -> None:
        self.lock = threading.Lock()
        self.tenant = TENANT
        self.identity_header = f"idh-{uuid.uuid4().hex}"
        self.github_request_token = f"ghrt-{uuid.uuid4().hex}"
        self.system_access_token = f"sat-{uuid.uuid4().hex}"
        self.service_connection_id = str(uuid.uuid4())
        self.secrets: dict[str, StoredSecret] = {}
        self.keys: dict[str, StoredKey] = {}
        self.sign_status: int | None = None  # an error status every sign request gets (403, 429, 5xx)
        self.system_identity = App(client_id=str(uuid.uuid4()), oid=str(uuid.uuid4()))
        self.apps: dict[str, App] = {}
        self.access_tokens: dict[str, App] = {}
        self.id_tokens: dict[str, dict[str, Any]] = {}
        self.firewall = False
        self.rbac = True
        self.throttle: dict[str, int] = {}  # secret name -> 429s left (-1: forever)
        self.denied: set[str] = set()  # secret names the caller has no role on (RBAC scoped to one secret)
        self.retry_after = "1"
        self.latency = 0.0
        self.page_size = 3
        self.hits: list[Hit] = []
        self.oidc_route = oidc_path_pattern()
        self._servers: list[ThreadingHTTPServer] = []
        self._pem = server_pem
        self.entra_expires_in = 3599
        self.hostile: Hostile | None = None  # answers in place of the documented ones where it returns a Raw
        self.vault_url = self._start("vault")
        self.login_url = self._start("login")
        self.evil_url = self._start("evil")  # another origin: nothing may ever be sent here

    # -- set-up helpers ------------------------------------------------------------------------------
    def add_secret(self, name: str, value: str, **kwargs: Any) -> StoredSecret:
        secret = StoredSecret(name, value, **kwargs)
        self.secrets[name.lower()] = secret
        return secret

    def add_key(self, name: str, curve: str = "P-256", versions: int = 1) -> StoredKey:
        """A key created in the vault (as ``POST /keys/NAME/create`` would), with ``versions`` versions."""
        from cryptography.hazmat.primitives.asymmetric import ec

        key = StoredKey(name, curve)
        for _ in range(versions):
            key.versions.append((uuid.uuid4().hex, ec.generate_private_key(ec.SECP256R1() if curve == "P-256"
                                                                           else ec.SECP384R1())))
        with self.lock:
            self.keys[name.lower()] = key
        return key

    def public_pem(self, name: str, version: str | None = None) -> bytes:
        """The PEM public key of a key version (the latest by default): what a verifier is handed."""
        from cryptography.hazmat.primitives import serialization

        key = self.keys[name.lower()]
        private = dict(key.versions)[version] if version else key.versions[-1][1]
        return private.public_key().public_bytes(serialization.Encoding.PEM,  # type: ignore[no-any-return]
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)

    def add_app(self, **kwargs: Any) -> App:
        app = App(client_id=str(uuid.uuid4()), oid=str(uuid.uuid4()), **kwargs)
        self.apps[app.client_id] = app
        return app

    def reset(self) -> None:
        with self.lock:
            self.secrets.clear()
            self.keys.clear()
            self.sign_status = None
            self.system_identity.key_permissions = {"get", "sign"}
            self.apps.clear()
            self.hits.clear()
            self.firewall = False
            self.rbac = True
            self.throttle.clear()
            self.denied.clear()
            self.retry_after = "1"
            self.latency = 0.0
            self.page_size = 3
            self.entra_expires_in = 3599
            self.id_tokens.clear()
            self.system_identity.permissions = {"get", "list"}
            self.hostile = None

    def count(self, server: str, path_prefix: str = "") -> int:
        return sum(1 for h in self.hits if h.server == server and h.path.startswith(path_prefix))

    @property
    def identity_endpoint(self) -> str:
        return f"{self.login_url}/msi/token"

    @property
    def github_token_url(self) -> str:
        return f"{self.login_url}/github/_apis/pipelines/workflows/42/idtoken?api-version=2.0"

    @property
    def oidc_request_uri(self) -> str:
        return (f"{self.login_url}/contoso/{uuid.uuid4()}/_apis/distributedtask/hubs/build/plans/"
                f"{uuid.uuid4()}/jobs/{uuid.uuid4()}/oidctoken")

    # -- servers -----------------------------------------------------------------------------------------
    def _start(self, role: str) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def setup(self) -> None:
                # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the client's
                # delayed ACK add ~40 ms to every answer, which no real service has.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                form = parse_qs(body.decode()) if "form-urlencoded" in (self.headers.get("Content-Type") or "") \
                    else {}
                hit = Hit(role, self.command, parts.path, parse_qs(parts.query),
                          {k.lower(): v for k, v in self.headers.items()}, form, time.monotonic(), body)
                with fake.lock:
                    fake.hits.append(hit)
                raw = fake.hostile(hit) if fake.hostile is not None and role != "evil" else None
                if raw is None:
                    status, headers, payload = fake._answer(role, hit)
                    data = json.dumps(payload).encode() if payload is not None else b""
                    raw = Raw(status, data, headers)
                self.send_response(raw.status)
                for key, value in raw.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", raw.content_type)
                self.send_header("Content-Length", str(len(raw.body)))
                self.end_headers()
                if not raw.trickle:
                    self.wfile.write(raw.body)
                    return
                for byte in raw.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(raw.trickle)

            do_GET = do_POST = do_PUT = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 drops concurrent connects (1 s SYN retry)

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that stops reading a huge or trickled answer is expected; anything else is a bug.
                if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
                    super().handle_error(request, client_address)

        server = Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self._pem))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name=f"fake-{role}", daemon=True).start()
        self._servers.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}"

    def _answer(self, role: str, hit: Hit) -> tuple[int, dict[str, str], Any]:
        if role == "vault":
            return self._vault(hit)
        if role == "login":
            return self._login(hit)
        # The other origin answers like a vault and an identity endpoint would, so following it "works".
        return 200, {}, {"value": "from-the-other-origin", "id": f"{self.evil_url}/secrets/x/1", "attributes": {},
                         "access_token": "evil-token", "expires_on": str(int(time.time()) + 3600),
                         "expires_in": 3600, "token_type": "Bearer"}

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # -- Key Vault -----------------------------------------------------------------------------------------
    @staticmethod
    def _kv_error(status: int, code: str, message: str, inner: str | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        error: dict[str, Any] = {"code": code, "message": message}
        if inner:
            error["innererror"] = {"code": inner}
        return status, headers or {}, {"error": error}

    def _challenge(self) -> tuple[int, dict[str, str], Any]:
        header = (f'Bearer authorization="https://login.microsoftonline.com/{self.tenant}", '
                  f'resource="{VAULT_RESOURCE}"')
        return 401, {"WWW-Authenticate": header}, {
            "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
        }

    def _attributes(self, secret: StoredSecret) -> dict[str, Any]:
        attrs: dict[str, Any] = {"enabled": secret.enabled, "created": 1700000000, "updated": 1700000000,
                                 "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
        if secret.expires is not None:
            attrs["exp"] = secret.expires
        if secret.not_before is not None:
            attrs["nbf"] = secret.not_before
        return attrs

    def _vault(self, hit: Hit) -> tuple[int, dict[str, str], Any]:
        if self.latency:
            time.sleep(self.latency)
        auth = hit.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return self._challenge()
        app = self.access_tokens.get(auth[len("Bearer "):])
        if app is None:
            return self._challenge()
        caller = f"appid={app.client_id};oid={app.oid};iss=https://sts.windows.net/{self.tenant}/"
        if self.firewall:
            return self._kv_error(403, "Forbidden", "Client address is not authorized and caller is not a trusted "
                                  f"service.\r\nClient address: 203.0.113.7\r\nCaller: {caller}\r\n"
                                  "Vault: fakevault;location=westeurope", "ForbiddenByFirewall")
        base = self.vault_url
        segments = [s for s in hit.path.split("/") if s]
        if segments == ["secrets"] and hit.method == "GET":
            if "list" not in app.permissions:
                return self._forbidden(app, caller, "list", "listSecrets")
            names = sorted(self.secrets)
            start = int(hit.query.get("$skiptoken", ["0"])[0])
            page = names[start:start + self.page_size]
            next_link = (f"{base}/secrets?api-version={hit.query['api-version'][0]}&$skiptoken={start + len(page)}"
                         if start + len(page) < len(names) else None)
            items = [{"id": f"{base}/secrets/{self.secrets[n].name}", "attributes": self._attributes(self.secrets[n]),
                      "tags": {}} for n in page]
            return 200, {}, {"value": items, "nextLink": next_link}
        if len(segments) in (2, 3) and segments[0] == "secrets" and hit.method == "GET":
            name = segments[1]
            if not re.fullmatch(r"[0-9A-Za-z-]{1,127}", name):
                return self._kv_error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
            if "get" not in app.permissions or name.lower() in self.denied:
                return self._forbidden(app, caller, "get", "getSecret")
            with self.lock:
                left = self.throttle.get(name.lower(), 0)
                if left:
                    self.throttle[name.lower()] = left - 1 if left > 0 else -1
            if left:
                return self._kv_error(429, "Throttled", "Request was not processed because too many requests were "
                                      "received. Reason: VaultRequestTypeLimitReached",
                                      headers={"Retry-After": self.retry_after})
            secret = self.secrets.get(name.lower())
            if secret is None:
                return self._kv_error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this "
                                      "key vault. If you recently deleted this secret you may be able to recover it "
                                      "using the correct recovery command.")
            if not secret.enabled:
                return self._kv_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                                      "SecretDisabled")
            return 200, {}, {"value": secret.value, "id": f"{base}/secrets/{secret.name}/{secret.version}",
                             "attributes": self._attributes(secret), "tags": {}}
        if segments and segments[0] == "keys":
            return self._keys(hit, segments, app, caller)
        return self._kv_error(400, "BadParameter", f"Unsupported request {hit.method} {hit.path}")

    # -- Key Vault keys --------------------------------------------------------------------------------------
    def _key_bundle(self, key: StoredKey, version: str, private: Any) -> dict[str, Any]:
        numbers = private.public_key().public_numbers()
        size = CURVES[key.curve][1]
        jwk = {"kid": f"{self.vault_url}/keys/{key.name}/{version}", "kty": "EC", "key_ops": list(key.key_ops),
               "crv": key.curve, "x": b64url(numbers.x.to_bytes(size, "big")),
               "y": b64url(numbers.y.to_bytes(size, "big"))}
        return {"key": jwk, "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000,
                                           "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
                                           "exportable": False},
                "tags": {}}

    def _key_forbidden(self, app: App, caller: str, op: str) -> tuple[int, dict[str, str], Any]:
        if self.rbac:
            return self._kv_error(
                403, "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments "
                "or role definitions were changed recently, please observe propagation time.\r\n"
                f"Caller: {caller}\r\nAction: 'Microsoft.KeyVault/vaults/keys/{op}/action'\r\n"
                "Resource: '/subscriptions/0000/resourcegroups/rg/providers/microsoft.keyvault/vaults/fakevault'\r\n"
                "Assignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n"
                "Vault: fakevault;location=westeurope\r\n", "ForbiddenByRbac")
        return self._kv_error(
            403, "Forbidden",
            f"The user, group or application '{caller}' does not have keys {op} permission on key vault "
            "'fakevault;location=westeurope'. For help resolving this issue, please see "
            "https://go.microsoft.com/fwlink/?linkid=2125287", "AccessDenied")

    def _find_key(self, name: str, version: str | None) -> tuple[StoredKey, str, Any] | None:
        key = self.keys.get(name.lower())
        if key is None or not key.versions:
            return None
        if not version:
            return key, *key.versions[-1]
        private = dict(key.versions).get(version)
        return (key, version, private) if private is not None else None

    def _keys(self, hit: Hit, segments: list[str], app: App, caller: str) -> tuple[int, dict[str, str], Any]:
        if len(segments) == 3 and segments[2] == "create" and hit.method == "POST":
            if "create" not in app.key_permissions:
                return self._key_forbidden(app, caller, "create")
            body = json.loads(hit.body or b"{}")
            if body.get("kty") not in ("EC", "EC-HSM") or body.get("crv", "P-256") not in CURVES:
                return self._kv_error(400, "BadParameter", "The fake creates EC keys on P-256 or P-384 only.")
            key = self.keys.get(segments[1].lower()) or StoredKey(segments[1], body.get("crv", "P-256"))
            created = self.add_key(segments[1], key.curve)
            created.versions[:0] = key.versions
            version, private = created.versions[-1]
            return 200, {}, self._key_bundle(created, version, private)
        if len(segments) in (2, 3) and hit.method == "GET":
            if "get" not in app.key_permissions:
                return self._key_forbidden(app, caller, "get")
            found = self._find_key(segments[1], segments[2] if len(segments) == 3 else None)
            if found is None:
                return self._key_not_found(segments[1])
            return 200, {}, self._key_bundle(*found)
        if len(segments) == 4 and segments[3] == "sign" and hit.method == "POST":
            return self._sign(hit, segments, app, caller)
        return self._kv_error(400, "BadParameter", f"Unsupported request {hit.method} {hit.path}")

    def _key_not_found(self, name: str) -> tuple[int, dict[str, str], Any]:
        return self._kv_error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault. If "
                              "you recently deleted this key you may be able to recover it using the correct "
                              "recovery command.")

    def _sign(self, hit: Hit, segments: list[str], app: App, caller: str) -> tuple[int, dict[str, str], Any]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        if "sign" not in app.key_permissions:
            return self._key_forbidden(app, caller, "sign")
        if self.sign_status == 403:
            return self._key_forbidden(app, caller, "sign")
        if self.sign_status == 429:
            return self._kv_error(429, "Throttled", "Request was not processed because too many requests were "
                                  "received. Reason: VaultRequestTypeLimitReached",
                                  headers={"Retry-After": self.retry_after})
        if self.sign_status is not None:
            return self._kv_error(self.sign_status, "InternalServerError", "The service encountered an internal "
                                  "error. Please try again later.")
        found = self._find_key(segments[1], segments[2])
        if found is None:
            return self._key_not_found(segments[1])
        key, version, private = found
        body = json.loads(hit.body or b"{}")
        _curve, size, alg = CURVES[key.curve]
        if body.get("alg") != alg:
            return self._kv_error(400, "BadParameter", f"Invalid algorithm {body.get('alg')} for a {key.curve} key.")
        digest = unb64url(str(body.get("value", "")))
        chosen = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        if len(digest) != chosen.digest_size:
            return self._kv_error(400, "BadParameter", "The digest length does not match the algorithm.")
        der = private.sign(digest, ec.ECDSA(utils.Prehashed(chosen)))
        r, s_value = utils.decode_dss_signature(der)
        raw = r.to_bytes(size, "big") + s_value.to_bytes(size, "big")
        return 200, {}, {"kid": f"{self.vault_url}/keys/{key.name}/{version}", "value": b64url(raw)}

    def _forbidden(self, app: App, caller: str, op: str, action: str) -> tuple[int, dict[str, str], Any]:
        if self.rbac:
            return self._kv_error(
                403, "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments "
                "or role definitions were changed recently, please observe propagation time.\r\n"
                f"Caller: {caller}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/{action}/action'\r\n"
                "Resource: '/subscriptions/0000/resourcegroups/rg/providers/microsoft.keyvault/vaults/fakevault'\r\n"
                "Assignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n"
                "Vault: fakevault;location=westeurope\r\n", "ForbiddenByRbac")
        return self._kv_error(
            403, "Forbidden",
            f"The user, group or application '{caller}' does not have secrets {op} permission on key vault "
            "'fakevault;location=westeurope'. For help resolving this issue, please see "
            "https://go.microsoft.com/fwlink/?linkid=2125287", "AccessDenied")

    # -- identity endpoints --------------------------------------------------------------------------------
    def _issue_access(self, app: App, resource: str) -> str:
        now = int(time.time())  # Entra access tokens carry iat/nbf/exp (Azurite's OAuth checks nbf and exp)
        token = jwt({"aud": resource, "iss": f"https://sts.windows.net/{self.tenant}/", "tid": self.tenant,
                     "oid": app.oid, "appid": app.client_id, "iat": now, "nbf": now - 300, "exp": now + 3600})
        with self.lock:
            self.access_tokens[token] = app
        return token

    def _issue_id_token(self, issuer: str, audience: str, subject: str) -> str:
        claims = {"iss": issuer, "aud": audience, "sub": subject, "jti": uuid.uuid4().hex,
                  "iat": int(time.time()), "exp": int(time.time()) + 300}
        token = jwt(claims)
        with self.lock:
            self.id_tokens[token] = claims
        return token

    def _login(self, hit: Hit) -> tuple[int, dict[str, str], Any]:
        if hit.path == "/msi/token":
            return self._msi(hit)
        if hit.path.startswith("/github/") and hit.path.endswith("/idtoken"):
            if hit.headers.get("authorization") != f"bearer {self.github_request_token}":
                return 401, {}, {"message": "Unauthorized"}
            audience = hit.query.get("audience", [""])[0]
            return 200, {}, {"count": 1, "value": self._issue_id_token(GITHUB_ISSUER, audience,
                                                                       "repo:octo/models:environment:prod")}
        if self.oidc_route.match(hit.path) and hit.method == "POST":
            if hit.headers.get("authorization") != f"Bearer {self.system_access_token}":
                return 401, {}, {"message": "TF400813: The user is not authorized to access this resource."}
            connection = hit.query.get("serviceConnectionId", [""])[0]
            if connection != self.service_connection_id:
                return 404, {}, {"message": f"Service connection {connection} not found."}
            issuer = "https://vstoken.dev.azure.com/00000000-0000-0000-0000-000000000001"
            return 200, {}, {"oidcToken": self._issue_id_token(issuer, "api://AzureADTokenExchange",
                                                               f"sc://contoso/ml/{connection}")}
        match = re.fullmatch(r"/([^/]+)/v2\.0/\.well-known/openid-configuration", hit.path)
        if match and hit.method == "GET":  # OpenID Connect discovery (MSAL-based credentials ask first)
            base = f"{self.login_url}/{match.group(1)}"
            return 200, {}, {"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                             "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                             "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                             "jwks_uri": f"{base}/discovery/v2.0/keys",
                             "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                             "response_types_supported": ["code", "id_token"], "tenant_region_scope": "EU"}
        match = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", hit.path)
        if match and hit.method == "POST":
            return self._entra(match.group(1), hit)
        return 404, {}, {"error": "not_found"}

    def _msi(self, hit: Hit) -> tuple[int, dict[str, str], Any]:
        if hit.headers.get("x-identity-header") != self.identity_header:
            return 401, {}, {"statusCode": 401, "message": "Unauthorized"}
        resource = hit.query.get("resource", [""])[0]
        client_id = hit.query.get("client_id", [None])[0]
        app = self.system_identity if client_id is None else self.apps.get(client_id)
        if app is None:
            return 400, {}, {"statusCode": 400, "message": "No User Assigned or Delegated Managed Identity found "
                             "for specified ClientId/ResourceId/PrincipalId.", "correlationId": str(uuid.uuid4())}
        return 200, {}, {"access_token": self._issue_access(app, resource), "expires_on": str(int(time.time()) + 3600),
                         "resource": resource, "token_type": "Bearer", "client_id": app.client_id}

    def _entra(self, tenant: str, hit: Hit) -> tuple[int, dict[str, str], Any]:
        form = {k: v[0] for k, v in hit.form.items()}

        def refuse(code: int, error: str, description: str) -> tuple[int, dict[str, str], Any]:
            return code, {}, {"error": error, "error_description": description, "error_codes": [0],
                              "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
                              "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}

        if tenant != self.tenant:
            return refuse(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return refuse(400, "unauthorized_client", f"AADSTS700016: Application with identifier "
                          f"'{form.get('client_id')}' was not found in the directory.")
        scope = form.get("scope", "")
        resource = scope.split(" ")[0].removesuffix("/.default")
        if form.get("client_assertion"):
            assertion = form["client_assertion"]
            claims = self.id_tokens.get(assertion)
            kind = "github" if claims and claims["iss"] == GITHUB_ISSUER else "azure-pipelines"
            if claims is None or kind not in app.federated:
                return refuse(400, "invalid_client", "AADSTS70021: No matching federated identity record found "
                              "for presented assertion.")
            if claims["aud"] != "api://AzureADTokenExchange":
                return refuse(400, "invalid_client", "AADSTS700212: No matching federated identity record found "
                              "for presented assertion audience.")
            if claims["exp"] < time.time():
                return refuse(400, "invalid_client", "AADSTS700024: Client assertion is not within its valid "
                              "time range.")
        elif form.get("client_secret"):
            if form["client_secret"] != app.client_secret:
                return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        else:
            return refuse(400, "invalid_request", "AADSTS900144: missing client credentials")
        return 200, {}, {"token_type": "Bearer", "expires_in": self.entra_expires_in,
                         "ext_expires_in": self.entra_expires_in,
                         "access_token": self._issue_access(app, resource)}
