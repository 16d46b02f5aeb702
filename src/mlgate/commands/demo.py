"""`mlgate demo`: the release flow end to end on an embedded default, no cloud account."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser

HELP = "the whole flow on a local sample model, no cloud account"
DESCRIPTION = """\
Run the release flow on an embedded default: generate a sample model, seal it, verify the
copy about to be deployed (pass), then tamper with a copy and show the refusal.
Everything is written under --workdir; nothing leaves this machine.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "demo", help=HELP, description=DESCRIPTION)
    parser.add_argument("--workdir", metavar="DIR", default=".demo", help="where the demo writes (default: .demo)")
    return parser


def _sample_model(root: Any) -> None:
    import json
    import random

    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)  # noqa: S311 -- reproducible sample bytes, not a secret
    (root / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: demo\n")
    (root / "model.bin").write_bytes(rng.randbytes(4 << 20))
    (root / "params.json").write_text(json.dumps({"C": 1.0, "max_iter": 200}))
    (root / "requirements.txt").write_text("scikit-learn\n")


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from mlgate.cli import main
    from mlgate.console import out

    work = Path(args.workdir)
    model, deployed, tampered = work / "model", work / "deploy", work / "tampered"
    for d in (model, deployed, tampered):
        shutil.rmtree(d, ignore_errors=True)
    _sample_model(model)
    manifest = str(work / "manifest.json")
    out("== 1. seal the registered model's files")
    if main(["seal", str(model), "-o", manifest]) != 0:
        return 3
    out("\n== 2. verify exactly what will be deployed (expect: match)")
    shutil.copytree(model, deployed)
    if main(["verify", str(deployed), "--manifest", manifest]) != 0:
        return 3
    out("\n== 3. a tampered copy (one byte changed, one file added, one removed) is refused")
    shutil.copytree(model, tampered)
    with open(tampered / "model.bin", "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    (tampered / "backdoor.py").write_text("print('hi')\n")
    (tampered / "requirements.txt").unlink()
    code = main(["verify", str(tampered), "--manifest", manifest])
    if code != 1:
        out(f"demo failed: the tampered copy gave exit {code}, expected 1")
        return 3
    out("\ndemo: OK (the tampered copy was refused with exit 1)")
    return 0
