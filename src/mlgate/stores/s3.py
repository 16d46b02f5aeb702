"""Back-end: Amazon S3 and S3-compatible stores (``boto3``, the optional extra ``mlgate[s3]``).

URIs: ``s3://<bucket>/<key prefix>``. Connection settings as MLflow's own S3 store reads them:
``MLFLOW_S3_ENDPOINT_URL`` (an S3-compatible endpoint: MinIO, moto, Ceph...), ``MLFLOW_S3_IGNORE_TLS``,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared
config/credentials files, ``AWS_DEFAULT_REGION``, instance and container roles -- boto3's chain.
Messages name the bucket, the endpoint and how the credentials were found (``env``,
``shared-credentials-file``, ``iam-role``, ...), never a key.

Limits: a directory is listed with a ``/`` delimiter, :data:`PAGE_SIZE` keys a page (one request per
page; ``dir/`` marker objects are skipped); a file is streamed in chunks of :data:`CHUNK` from one
ranged GET when it fits in :data:`RANGE` (8 MiB), a larger one as parallel ranges of
the same version (``If-Match`` its ETag) feeding one sequential hash (bounded memory, no temporary
copy on disk). boto3 sends requests to the configured endpoint only (AWS
region redirects stay on AWS).
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from mlgate.errors import Error, UsageError
from mlgate.extras import install_hint
from mlgate.stores import ranges
from mlgate.stores.interface import ArtifactStore, Entry, Missing, Page, StoreError, parent_path
from mlgate.urls import safe_url

PAGE_SIZE = 1000
CHUNK = 1 << 20
RANGE = 8 << 20  # s3transfer's own multipart chunk size: half the requests of Azure's 4 MiB on large objects
KIND = "S3"


def open_s3_store(uri: str, env: Mapping[str, str] | None = None) -> S3Store:
    """A client for ``uri``'s bucket configured as MLflow configures its own (see the module)."""
    env = os.environ if env is None else env
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != "s3" or not parts.netloc or parts.query or "@" in parts.netloc:
        raise UsageError(f"not an S3 location: {safe_url(uri)}", hint="use s3://<bucket>/<path>")
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UsageError(f"the model's files are in S3 ({safe_url(uri)}), and boto3 is not installed",
                         hint=install_hint("s3")) from None
    endpoint = env.get("MLFLOW_S3_ENDPOINT_URL") or None
    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is not None:
        from mlgate import redact

        frozen = credentials.get_frozen_credentials()
        for secret in (frozen.secret_key, frozen.token):
            if secret:
                redact.register(secret)
    identity = f"AWS credentials from {credentials.method}" if credentials is not None else "no AWS credentials"
    config = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
                    signature_version="s3v4")
    verify = False if env.get("MLFLOW_S3_IGNORE_TLS", "").lower() == "true" else None
    client = session.client("s3", endpoint_url=endpoint, config=config, verify=verify)
    where = f"bucket {parts.netloc}" + (f" at {safe_url(endpoint)}" if endpoint else "")
    return S3Store(client, parts.netloc, parts.path.strip("/"), where, identity)


def _total_size(answer: dict[str, Any]) -> int:
    """The object's size from a ranged GET: ``Content-Range: bytes 0-N/TOTAL`` (absent when it was whole)."""
    content_range = str(answer.get("ContentRange") or "")
    if content_range:
        total = content_range.rpartition("/")[2]
        if not total.isdigit():
            raise ValueError("Content-Range without a total size")
        return int(total)
    return int(answer["ContentLength"])


class S3Store(ArtifactStore):
    kind = KIND

    def __init__(self, client: Any, bucket: str, path: str, shown: str, identity: str) -> None:
        self.client, self.bucket, self.path, self.shown, self.identity = client, bucket, path, shown, identity

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.path, name.strip("/")) if p)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """botocore errors as exit-3 errors naming the store (never the SDK's text, which may carry URLs)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        from botocore.parsers import ResponseParserError

        def fail(why: str, hint: str | None = None) -> StoreError:
            return StoreError(KIND, self.shown, self.identity, f"{what}: {why}", hint=hint)

        try:
            yield
        except Error:
            raise
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412 or code == "PreconditionFailed":
                raise fail("the file changed while it was read (HTTP 412 on a later range)",
                           "re-run once nothing writes to the model's files") from None
            if code in ("NoSuchKey", "404") or status == 404:
                raise Missing(f"{KIND} ({self.shown}): {what}: not found",
                              hint="the store holds no such file; check the location") from None
            if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise fail(f"access refused (HTTP 403{', ' + code if code.isalnum() else ''}): the credentials "
                           "are not accepted or lack permission on the bucket",
                           "check the AWS credentials, or grant s3:ListBucket and s3:GetObject (s3:PutObject to "
                           "seal)") from None
            raise fail(f"the store answered HTTP {status}" + (f" ({code})" if code.isalnum() else "")) from None
        except NoCredentialsError:
            raise fail("no AWS credentials were found",
                       "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with a role") from None
        except ResponseParserError:
            raise fail("the store answered something that is not an S3 answer") from None
        except BotoCoreError as exc:
            raise fail(f"cannot reach the store ({type(exc).__name__})", "check the endpoint and network; re-run") \
                from None
        except (TypeError, AttributeError, ValueError, KeyError) as exc:  # an answer missing what S3 documents
            raise fail(f"the store answered something that is not an S3 answer ({type(exc).__name__})") from None

    def list(self, directory: str, page_token: str | None = None) -> Page:
        top = f"{self.path}/" if self.path else ""
        prefix = self._key(directory) + "/" if self._key(directory) else ""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": PAGE_SIZE}
        if page_token:
            args["ContinuationToken"] = page_token
        entries: list[Entry] = []
        with self._errors(f"listing {directory or 'the model root'}"):
            answer = self.client.list_objects_v2(**args)
            if answer.get("Name") != self.bucket:  # every ListObjectsV2 answer names its bucket
                raise StoreError(KIND, self.shown, self.identity, f"listing {directory or 'the model root'}: the "
                                 "store answered something that is not an S3 listing of this bucket")
            found: list[tuple[str, bool, int | None]] = [
                (str(p["Prefix"]), True, None) for p in answer.get("CommonPrefixes", [])]
            found += [(str(o["Key"]), False, int(o["Size"])) for o in answer.get("Contents", [])]
            for name, is_dir, size in found:
                if not name.startswith(prefix):
                    raise StoreError(KIND, self.shown, self.identity,
                                     f"listing {directory or 'the model root'} names {name!r}, outside it")
                if name != prefix:
                    entries.append(Entry(name[len(top):].rstrip("/"), is_dir, size))
            token = answer.get("NextContinuationToken") if answer.get("IsTruncated") else None
        return Page(tuple(entries), str(token) if token else None)

    def open(self, name: str) -> Iterator[bytes]:
        key = self._key(name)
        with self._errors(f"reading {name}"):
            answer = self._first_range(key)
            size, etag = _total_size(answer), str(answer["ETag"])
            body = answer["Body"]
            read = 0
            try:
                for chunk in body.iter_chunks(CHUNK):
                    read += len(chunk)
                    yield chunk
            finally:
                body.close()

            def fetch(offset: int, length: int) -> bytes:
                part = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=etag,
                                              Range=f"bytes={offset}-{offset + length - 1}")
                with contextlib.closing(part["Body"]) as stream:
                    return bytes(stream.read())

            yield from ranges.rest_in_ranges(name, read, size, fetch, range_size=RANGE)

    def _first_range(self, key: str) -> dict[str, Any]:
        """The first range of ``key``; an empty object (no satisfiable range, HTTP 416) whole."""
        from botocore.exceptions import ClientError

        try:
            answer: dict[str, Any] = self.client.get_object(Bucket=self.bucket, Key=key,
                                                            Range=f"bytes=0-{RANGE - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        return answer

    def put(self, name: str, data: bytes) -> str:
        key = "/".join(p for p in (parent_path(self.path), name) if p)
        with self._errors(f"storing {name}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"
