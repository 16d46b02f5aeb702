"""Load and validate a policy file; errors name the line and the key path.

A policy is YAML (DESIGN §3). It is checked against :data:`mlgate.policy.schema.SCHEMA` and
a few rules a schema cannot say (``default_risk`` names a risk class, no duplicate keys).
Every problem is reported at once as :class:`InvalidInputError` (exit 2).
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlgate.approvals.rules import ApprovalRules
from mlgate.errors import InvalidInputError, UsageError

MAX_POLICY_BYTES = 1 << 20
HINT = "fix the policy file; see the README section 'Policy reference'"

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
_THRESHOLD = re.compile(r"^\s*(>=|<=|==|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Threshold:
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        match = _THRESHOLD.match(text)
        if not match:
            raise ValueError(f"not a threshold: {text!r}")
        value = float(match.group(2))
        if not math.isfinite(value):
            raise ValueError(f"{text!r} overflows to infinity (write a finite number)")
        return cls(match.group(1), value)

    def check(self, actual: float) -> bool:
        """Whether ``actual`` meets the threshold; never for a boolean or a non-finite value."""
        if isinstance(actual, bool) or not isinstance(actual, (int, float)) or not math.isfinite(actual):
            return False
        return _OPS[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Bound:
    """One threshold a metric must meet, with where the policy set it (``risk class high``,
    ``stage production``)."""

    threshold: Threshold
    source: str

    def __str__(self) -> str:
        return f"{self.threshold} ({self.source})"


Approvals = ApprovalRules  # the policy's name for the one approvals-rule type


@dataclass(frozen=True)
class Requirements:
    """What one risk class (plus the stage, if any) requires of a model version. A metric named by
    both the risk class and the stage carries both bounds; every bound must hold."""

    risk_class: str
    stage: str | None = None
    lineage: tuple[str, ...] = ()
    tags_required: tuple[str, ...] = ()
    metrics: Mapping[str, tuple[Bound, ...]] = field(default_factory=dict)
    fairness: Mapping[str, tuple[Bound, ...]] = field(default_factory=dict)
    approvals: ApprovalRules = field(default_factory=ApprovalRules)
    #: ``signing.trusted_keys`` of each layer that names some (risk class, then stage): the seal's
    #: signature must verify with a key of every one of them
    trusted_keys: tuple[tuple[str, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "risk_class": self.risk_class, "stage": self.stage, "lineage": list(self.lineage),
            "tags_required": list(self.tags_required),
            "metrics": {k: " and ".join(map(str, v)) for k, v in self.metrics.items()},
            "fairness": {k: " and ".join(map(str, v)) for k, v in self.fairness.items()},
            "approvals": self.approvals.to_dict(),
        }
        if self.trusted_keys:
            doc["signing"] = {"trusted_keys": [list(layer) for layer in self.trusted_keys]}
        return doc


def _joined(*lists: Any) -> tuple[str, ...]:
    """Lists joined in order, without duplicates."""
    return tuple(dict.fromkeys(str(x) for items in lists for x in (items or [])))


def _bounds(key: str, *layers: tuple[Mapping[str, Any], str]) -> dict[str, tuple[Bound, ...]]:
    """Every layer's thresholds for ``key`` (metrics or fairness); a metric named twice gets both."""
    out: dict[str, tuple[Bound, ...]] = {}
    for block, source in layers:
        for name, text in (block.get(key) or {}).items():
            out[name] = (*out.get(name, ()), Bound(Threshold.parse(text), source))
    return out


@dataclass(frozen=True)
class Policy:
    document: Mapping[str, Any]
    sha256: str
    source: str = "policy"

    @property
    def default_risk(self) -> str | None:
        value = self.document.get("default_risk")
        return str(value) if value else None

    @property
    def risk_classes(self) -> tuple[str, ...]:
        return tuple(self.document["risk_classes"])

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.document.get("stages") or {})

    def requirements(self, risk_class: str, stage: str | None = None) -> Requirements:
        """Requirements of ``risk_class`` with ``stage``'s added on top; a stage only adds or
        tightens, never weakens (see the README's Policy reference). Unknown names: :class:`UsageError`."""
        classes = self.document["risk_classes"]
        if risk_class not in classes:
            raise UsageError(f"{self.source}: no risk class {risk_class!r} (has: {', '.join(classes)})", hint=HINT)
        base: Mapping[str, Any] = classes[risk_class] or {}
        layers = [(base, f"risk class {risk_class}")]
        if stage is not None:
            stages = self.document.get("stages") or {}
            if stage not in stages:
                raise UsageError(
                    f"{self.source}: no stage {stage!r} under 'stages' (has: {', '.join(stages) or 'none'})",
                    hint="add the stage to the policy's 'stages' map (an empty map {} adds nothing)",
                )
            layers.append((stages[stage] or {}, f"stage {stage}"))
        approvals = ApprovalRules.from_dict(base.get("approvals"), where=f"risk_classes.{risk_class}.approvals")
        for block, _ in layers[1:]:
            approvals = approvals.tightened(block.get("approvals") or {})
        return Requirements(
            risk_class=risk_class,
            stage=stage,
            lineage=_joined(*(block.get("lineage") for block, _ in layers)),
            tags_required=_joined(*(block.get("tags_required") for block, _ in layers)),
            metrics=_bounds("metrics", *layers),
            fairness=_bounds("fairness", *layers),
            approvals=approvals,
            trusted_keys=tuple(tuple(self.key_spec(k) for k in (block.get("signing") or {}).get("trusted_keys", []))
                               for block, _ in layers if (block.get("signing") or {}).get("trusted_keys")),
        )

    def key_spec(self, spec: str) -> str:
        """A trusted key as written in the policy: a PEM path is relative to the policy file's folder."""
        import os

        text = str(spec).strip()
        if "://" in text or os.path.isabs(text) or self.source == "policy":
            return text
        return os.path.join(os.path.dirname(os.path.abspath(self.source)), text)


def _key_line(node: Any, path: list[str | int]) -> int | None:
    """1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _dotted(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _yaml(text: str, source: str) -> tuple[Mapping[str, Any], Any]:
    """The YAML mapping in ``text`` and its root node; every problem is exit 2 naming line and key."""
    import yaml

    from mlgate.policy import yamlsafe

    try:
        document, root = yamlsafe.load(text)
    except yamlsafe.YamlProblems as exc:
        raise _invalid(source, [str(p) for p in exc.problems]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InvalidInputError(f"{source}: invalid YAML: {where}{exc.problem or exc}", hint=HINT,
                                source_line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        raise InvalidInputError(f"{source}: invalid YAML: line {line}: the control character U+{code:04X} "
                                "is not allowed", hint=HINT, source_line=line) from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{source}: invalid YAML ({type(exc).__name__})", hint=HINT) from None
    if not isinstance(document, dict):
        raise InvalidInputError(f"{source}: the policy must be a YAML mapping (version: 1, risk_classes: ...)",
                                hint=HINT)
    return document, root


def _invalid(source: str, problems: list[str]) -> InvalidInputError:
    listing = "\n  ".join(problems[:50])
    first = re.match(r"line (\d+)", problems[0]) if problems else None
    return InvalidInputError(f"{source}: invalid policy ({len(problems)} problem(s))\n  {listing}", hint=HINT,
                             source_line=int(first.group(1)) if first else None)


def _schema_problems(document: Mapping[str, Any], root: Any) -> list[str]:
    import jsonschema
    from jsonschema.exceptions import best_match

    from mlgate.policy.schema import SCHEMA

    problems: list[str] = []
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for error in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.context:
            error = best_match(error.context) or error
        path = list(error.absolute_path)
        message = error.message
        parent = path[-2] if len(path) >= 2 else None
        if error.validator == "pattern" and parent in ("metrics", "fairness"):
            message = f"{error.instance!r} is not a threshold (write e.g. \">= 0.80\"; operators >=, >, <=, <, ==)"
        elif error.validator == "enum" and parent == "lineage":
            message = f"{error.instance!r} is not a lineage link (one of: {', '.join(map(str, error.validator_value))})"
        problems.append(f"line {_key_line(root, path)}, key {_dotted(path)}: {message}")
    return problems


def _meaning_problems(document: Mapping[str, Any], root: Any) -> list[str]:
    """What a schema cannot say: ``default_risk`` names a risk class, every threshold is finite."""
    problems: list[str] = []
    classes: Mapping[str, Any] = document["risk_classes"]
    default = document.get("default_risk")
    if default is not None and default not in classes:
        problems.append(f"line {_key_line(root, ['default_risk'])}, key default_risk: {default!r} is not one of "
                        f"risk_classes ({', '.join(classes)})")
    stages: Mapping[str, Any] = document.get("stages") or {}
    for top, blocks in (("risk_classes", classes), ("stages", stages)):
        for name, block in blocks.items():
            for section in ("metrics", "fairness"):
                for metric, text in ((block or {}).get(section) or {}).items():
                    try:
                        Threshold.parse(text)
                    except ValueError as exc:
                        path: list[str | int] = [top, name, section, metric]
                        problems.append(f"line {_key_line(root, path)}, key {_dotted(path)}: {exc}")
    return problems


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """Validate policy YAML text. Every problem at once, each with line and key path."""
    document, root = _yaml(text, source)
    problems = _schema_problems(document, root)
    if not problems:
        problems = _meaning_problems(document, root)
    if problems:
        raise _invalid(source, problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Policy(document=document, sha256=digest, source=source)


def load_policy(path: str) -> Policy:
    """Read (bounded, regular files only) and validate the policy at ``path``."""
    from mlgate.files import read_text

    text = read_text(path, MAX_POLICY_BYTES, what="policy")
    try:
        return parse_policy(text, source=path)
    except InvalidInputError as exc:  # the policy file is at fault: the CI annotation points at its line
        exc.source_file = exc.source_file or path
        raise
