# The approval-check service (`mlgate serve`) as a container image.
#
#   docker build -t mlgate-serve .
#   docker run -p 8080:8080 -e MLGATE_SERVE_POLICY=/etc/mlgate/release-policy.yaml ... mlgate-serve
#
# Base: the official Python image, pinned by tag (3.11.7 on Debian bookworm, slim). Pin it by
# digest in your registry mirror as well (`FROM python:3.11.7-slim-bookworm@sha256:...`): the
# digest is not written here because it could not be looked up where this file was written.
# Dependencies: the `service` extra's hashed lock (locks/service.txt, `make lock`), installed with
# --require-hashes, then the package itself without dependencies: nothing unhashed gets in.
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY locks/service.txt ./locks/
RUN python -m venv /opt/mlgate \
 && /opt/mlgate/bin/pip install --require-hashes -r locks/service.txt
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN /opt/mlgate/bin/pip install --no-deps .

FROM python:3.11.7-slim-bookworm
RUN groupadd --system --gid 10001 mlgate \
 && useradd --system --uid 10001 --gid mlgate --home-dir /nonexistent --shell /usr/sbin/nologin mlgate
COPY --from=build /opt/mlgate /opt/mlgate
ENV PATH=/opt/mlgate/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MLGATE_SERVE_EVIDENCE_DIR=/tmp/mlgate-evidence
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["mlgate", "serve", "--host", "0.0.0.0", "--port", "8080"]
