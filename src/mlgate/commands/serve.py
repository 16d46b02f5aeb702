"""`mlgate serve`: run the approval-check service (WSGI) under waitress."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser

HELP = "run the approval-check service (WSGI)"
DRAIN_SECONDS = 25.0  # within the usual 30 s stop grace period of containers
DESCRIPTION = """\
Serve the Azure DevOps 'Invoke REST API' check (callback mode) and the GitHub custom deployment
protection rule, so an environment's approver sees mlgate's evidence next to the Approve button.

routes:
  POST /azure-devops/check   the Azure DevOps check (plan headers + {"model": REF})
  POST /github/webhook       the GitHub App webhook (deployment_protection_rule)
  GET  /healthz              health
  GET  /evidence/SHA256.md   the full evidence pack linked from the log/comment
"""
EPILOG = """\
configuration (environment variables, or keys of the --config YAML/JSON file):
  MLGATE_SERVE_POLICY                 release policy YAML (required)
  MLGATE_SERVE_STAGE                  stage the policy is evaluated for (default production)
  MLFLOW_TRACKING_URI / MLGATE_SERVE_MLFLOW_TRACKING_URI   the MLflow server
  MLGATE_SERVE_PUBLIC_URL             this service's public URL (links to the full evidence)
  MLGATE_SERVE_EVIDENCE_DIR           where evidence packs are kept (default: a temp dir)
  MLGATE_SERVE_AZURE_DEVOPS_KEY       shared key of the Azure DevOps check (secret)
  MLGATE_SERVE_AZURE_DEVOPS_ALLOWED_HOSTS  hosts a PlanUrl may have (dev.azure.com,*.visualstudio.com)
  MLGATE_SERVE_AZURE_DEVOPS_ORGANIZATIONS  the only organisation URLs a PlanUrl may be (default: any on those hosts)
  MLGATE_SERVE_GITHUB_APP_ID          GitHub App id
  MLGATE_SERVE_GITHUB_PRIVATE_KEY     GitHub App private key, PEM (secret)
  MLGATE_SERVE_GITHUB_WEBHOOK_SECRET  GitHub App webhook secret (secret)
  MLGATE_SERVE_GITHUB_API_URL         GitHub API URL (default https://api.github.com)
  MLGATE_SERVE_ENVIRONMENT_MODELS     environment -> model, e.g. prod=models:/fraud@champion
  MLGATE_SERVE_WORKERS / MAX_BODY_BYTES / MAX_PENDING / REPLAY_TTL_SECONDS
  MLGATE_SERVE_AZURE_DEVOPS_KEY_PREVIOUS / GITHUB_WEBHOOK_SECRET_PREVIOUS  old values during a rotation (secret)
state (replay memory and pending evaluations):
  MLGATE_SERVE_STATE                  in-process (default: one process) or azure-storage (replicas)
  MLGATE_SERVE_STATE_STORAGE_ACCOUNT  the account of the queue and table (or STATE_QUEUE_ENDPOINT and
                                      STATE_TABLE_ENDPOINT; or STATE_CONNECTION_STRING, secret)
  MLGATE_SERVE_STATE_IDENTITY / STATE_CLIENT_ID   the identity that reaches them (default auto)
  MLGATE_SERVE_STATE_QUEUE / STATE_TABLE          their names (mlgate-checks, mlgatechecks)
  MLGATE_SERVE_VISIBILITY_TIMEOUT_SECONDS / MAX_ATTEMPTS / POLL_SECONDS  (300, 5, 2)
Secrets are never read from the file itself: give them as variables, as files with
MLGATE_SERVE_<KEY>_FILE (mounted secrets), or from Key Vault with the service's identity:
MLGATE_SERVE_KEY_VAULT=NAME|URL and MLGATE_SERVE_<KEY>_SECRET_NAME=NAME
(MLGATE_SERVE_KEY_VAULT_IDENTITY / _CLIENT_ID choose the identity, as for `mlgate secrets`).

other WSGI servers: gunicorn 'mlgate.service.wsgi:application' (with the in-process state:
one worker process, several threads). Logs are JSON lines on stderr, without secrets.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "serve", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="YAML/JSON configuration file (default: MLGATE_SERVE_* variables only)",
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="waitress threads answering requests (default 8)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from waitress.server import create_server

    from mlgate.deadline import disarm
    from mlgate.errors import UsageError
    from mlgate.service import logs
    from mlgate.service.app import create_app_from_env
    from mlgate.service.logs import log_event

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port number", hint="give 0..65535")
    if args.threads < 1:
        raise UsageError("--threads must be at least 1")
    logs.configure(level=logging.DEBUG if args.verbose >= 2 else logging.INFO)
    app = create_app_from_env(args.config)
    try:
        server = create_server(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            ident="mlgate",
            max_request_body_size=app.config.max_body_bytes,
            clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}",
            hint="pick another --port (or MLGATE_PORT), or stop what holds it",
        ) from None

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    # --deadline bounds the start-up (configuration, Key Vault, policy); once listening, the
    # service runs until stopped, each call bounded by its own timeouts and caps.
    disarm()
    port = getattr(server, "effective_port", args.port)
    log_event(logging.INFO, "listening", host=args.host, port=port, url=f"http://{args.host}:{port}")
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        log_event(logging.INFO, "stopping", pending_evaluations=app.state.pending)
        server.close()  # no new calls; let the evaluations already acknowledged finish and report
        drained = app.state.wait_idle(DRAIN_SECONDS)
        if not drained:
            log_event(logging.WARNING, "stopped_with_pending_evaluations", pending_evaluations=app.state.pending)
        app.state.close(wait=True)
    return 0
