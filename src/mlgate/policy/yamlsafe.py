"""Bounded YAML for the policy file: parse once, check the node tree, then build the document.

PyYAML's ``safe_load`` never runs code, but it does not bound work: a 1 KiB "billion laughs"
alias bomb expands to a billion values for any code that walks the document, a recursive anchor
(``a: &a [*a]``) builds a cyclic object, 50,000 nested brackets overflow the stack, and a
5,000-digit integer crashes the integer conversion. The policy file is small and written by
hand, so the limits below are far beyond any real one:

* aliases are allowed (sharing one requirements block between risk classes or stages is a
  fair use of anchors) but at most :data:`MAX_ALIASES`, never inside their own anchor, and the
  document after expanding them holds at most :data:`MAX_NODES` values;
* nesting at most :data:`MAX_DEPTH` levels, a scalar at most :data:`MAX_SCALAR` characters,
  an integer at most :data:`MAX_INT_DIGITS` digits, every float finite;
* every mapping key is a string (``1:``, ``yes:``, ``null:`` are refused: quote them).

Every problem names its line and key path (:class:`Problem`); :func:`load` raises
:class:`YamlProblems` with all of them, or a ``yaml.YAMLError`` for text that is not YAML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import yaml
from yaml.composer import ComposerError
from yaml.scanner import ScannerError

from mlgate.jsonvalue import MAX_INT_DIGITS

MAX_ALIASES = 100
MAX_NODES = 10_000
MAX_DEPTH = 32
MAX_SCALAR = 1000

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_KINDS = {"tag:yaml.org,2002:int": "a number", _FLOAT: "a number", "tag:yaml.org,2002:bool": "a boolean",
          "tag:yaml.org,2002:null": "null", "tag:yaml.org,2002:timestamp": "a date"}


@dataclass(frozen=True)
class Problem:
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, key {self.key}: {self.message}"


class YamlProblems(Exception):
    """The node tree breaks a bound; ``problems`` lists each with its line and key."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses too many aliases or nodes and too deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._nodes = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner looks ahead over open brackets (quadratic in their number): stop early.
        if self.flow_level >= MAX_DEPTH:
            raise ScannerError(None, None, f"nested deeper than {MAX_DEPTH} levels (limit)", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = cast(Any, self).peek_event().start_mark  # PyYAML's stubs leave peek_event untyped
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_ALIASES} aliases (limit)", mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ComposerError(None, None, f"more than {MAX_NODES} values (limit)", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels (limit)", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Walk:
    """One pass over the composed tree, following aliases, counting what they expand to."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.seen = 0
        self.stack: set[int] = set()

    def node(self, node: yaml.Node, path: str, at: int = 0) -> bool:
        """Check ``node`` (reached from line ``at``, if known); False stops the walk (the tree is unbounded)."""
        line = at or node.start_mark.line + 1
        self.seen += 1
        if self.seen > MAX_NODES:
            self.problems.append(Problem(line, path, f"more than {MAX_NODES} values after expanding aliases "
                                                     "(an alias bomb?)"))
            return False
        if id(node) in self.stack:
            self.problems.append(Problem(line, path, "recursive anchor (an alias inside its own anchor)"))
            return False
        if path.count(".") + path.count("[") >= MAX_DEPTH:
            self.problems.append(Problem(line, path, f"nested deeper than {MAX_DEPTH} levels (limit)"))
            return False
        if isinstance(node, yaml.ScalarNode):
            self.scalar(node, path, line)
            return True
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return all(self.node(item, f"{path}[{i}]") for i, item in enumerate(node.value))
            return isinstance(node, yaml.MappingNode) and self.mapping(node, path)
        finally:
            self.stack.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: str) -> bool:
        seen: set[str] = set()
        for key, value in node.value:
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode) and key.tag == _MERGE:
                if not self.node(value, path):
                    return False
                continue
            if not isinstance(key, yaml.ScalarNode) or key.tag != _STR:
                if isinstance(key, yaml.ScalarNode):
                    shown = f"key {str(key.value)[:40]!r} is {_KINDS.get(key.tag, 'not a string')}"
                else:
                    shown = "a key is a list or mapping"
                self.problems.append(Problem(line, path or "(top level)", f"{shown}, not a string (quote it)"))
                continue
            name = str(key.value)[:MAX_SCALAR]
            child = f"{path}.{name}" if path else name
            if name in seen:
                self.problems.append(Problem(line, child, "duplicate key"))
            seen.add(name)
            if not self.node(value, child, line):
                return False
        return True

    def scalar(self, node: yaml.ScalarNode, path: str, line: int) -> None:
        text = str(node.value)
        where = path or "(top level)"
        if len(text) > MAX_SCALAR:
            self.problems.append(Problem(line, where, f"a value of {len(text)} characters (limit {MAX_SCALAR})"))
        elif node.tag == _INT and sum(c.isdigit() for c in text) > MAX_INT_DIGITS:
            self.problems.append(Problem(line, where, f"an integer of {sum(c.isdigit() for c in text)} digits "
                                                      f"(limit {MAX_INT_DIGITS})"))
        elif node.tag == _FLOAT and not _finite(text):
            self.problems.append(Problem(line, where, f"{text!r} is not a finite number"))


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text.replace("_", "")))
    except ValueError:
        return False


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """The document in ``text`` and its root node, within the bounds of this module."""
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        walk = _Walk()
        walk.node(root, "")
        if walk.problems:
            raise YamlProblems(walk.problems)
        return loader.construct_document(root), root
    finally:
        loader.dispose()
