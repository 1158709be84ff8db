"""Parsing a tenant file's YAML within its size and expansion limits, and the issues it reports."""

from __future__ import annotations

from typing import Any

import msgspec
import yaml

__all__ = [
    "MAX_TENANT_FILE_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "ConfigError",
    "ConfigIssue",
    "YamlDocument",
    "format_path",
]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigIssue(msgspec.Struct, frozen=True):
    """One problem in a tenant file.

    Attributes:
        file: the file as given (or ``<admin upload>``).
        line: 1-based line, or None when unknown.
        path: dotted field path (``features.booking.slot_minutes``), "" for the file.
        reason: what is wrong, in plain words.
    """

    file: str
    line: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{location}: {self.path}: {self.reason}" if self.path else f"{location}: {self.reason}"
        )


class ConfigError(Exception):
    """A tenant file (or a set of them) failed validation.

    Attributes:
        issues: every problem found, each printable as ``file:line: path: reason``.
        trace: when a plugin's check crashed (not a problem it reported), that
            exception's traceback with every environment value replaced by its
            reference, for the runtime's log; empty otherwise.
    """

    def __init__(self, issues: list[ConfigIssue], trace: str = ""):
        self.issues = issues
        self.trace = trace
        super().__init__("\n".join(str(issue) for issue in issues))


MAX_TENANT_FILE_BYTES = 256 * 1024
"""Largest tenant file accepted, in bytes of UTF-8 (admin uploads over it get 413).
A tenant with hundreds of tables or products stays far below it."""

MAX_YAML_NODES = 20_000
"""Most YAML nodes a tenant file may expand to, counting an alias's whole subtree
each time it is used: a "billion laughs" document of a few hundred bytes
expands to hundreds of millions, which every later pass would walk."""

MAX_YAML_DEPTH = 50
"""Deepest nesting of YAML nodes (the root is depth 1, aliases expanded); tenant
files need fewer than ten levels."""


class YamlDocument:
    """A parsed YAML mapping with the line of every node, for error messages.

    Before any Python object is built, the document is refused when it is over
    :data:`MAX_TENANT_FILE_BYTES`, expands (aliases included) to more than
    :data:`MAX_YAML_NODES` nodes, contains a recursive alias, or nests deeper
    than :data:`MAX_YAML_DEPTH`; anchors and aliases within those limits work
    as YAML defines them (including ``<<`` merge keys).

    Args:
        filename: shown in errors.
        text: the YAML source.

    Raises:
        ConfigError: one issue naming the file, the line (when known) and the
            reason: invalid YAML, a limit above exceeded, a scalar PyYAML cannot
            convert (``2001-13-45``, an int of more than 4300 digits), or a
            document that is not a mapping.
    """

    def __init__(self, filename: str, text: str):
        self.filename = filename
        # len(text) is a lower bound of the UTF-8 size: skip encoding a huge text.
        size = len(text) if len(text) > MAX_TENANT_FILE_BYTES else len(text.encode("utf-8"))
        if size > MAX_TENANT_FILE_BYTES:
            raise ConfigError(
                [
                    ConfigIssue(
                        filename,
                        None,
                        "",
                        f"the file is {size} bytes; a tenant file is at most"
                        f" {MAX_TENANT_FILE_BYTES} bytes",
                    )
                ]
            )
        try:
            # Compose keeps line numbers and shares the node of an anchor with
            # its aliases, so it costs what the text costs (libyaml when available).
            self.root = yaml.compose(text, Loader=_Loader)
            if self.root is not None:
                _check_expansion(filename, text, self.root)
                self.data = _Constructor("").construct_document(self.root)
            else:
                self.data = None
        except ConfigError:
            raise
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(
                [ConfigIssue(filename, line, "", f"invalid YAML: {problem}")]
            ) from None
        except Exception as exc:
            # PyYAML's pure-Python parser recurses per nesting level (RecursionError).
            raise ConfigError(
                [ConfigIssue(filename, None, "", f"invalid YAML: {type(exc).__name__}: {exc}")]
            ) from None
        if not isinstance(self.data, dict):
            raise ConfigError(
                [ConfigIssue(filename, 1, "", "expected a mapping of tenant settings")]
            )

    def line_of(self, path: list[str | int]) -> int | None:
        """Return the 1-based line of the deepest existing node on ``path``."""
        node = self.root
        line = node.start_mark.line + 1 if node else None
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == str(part):
                        child = value
                        line = key.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    child = node.value[part]
                    line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line

    def issue(self, path: list[str | int], reason: str) -> ConfigIssue:
        """Build a ConfigIssue for ``path`` with its line number."""
        return ConfigIssue(self.filename, self.line_of(path), format_path(path), reason)


class _Constructor(_Loader):  # type: ignore[misc, valid-type]
    """PyYAML's safe constructor, with the line of a scalar it cannot convert.

    SafeConstructor lets ValueError escape for scalars that match a tag's
    pattern but are no value (``2001-13-45``, ``!!float abc``, an int longer
    than Python's 4300-digit limit); here they become a ConstructorError
    carrying the node's position, like every other YAML error.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None


class _ExpansionRefused(Exception):
    """The node walk of :func:`_check_expansion` stopped at ``node``.

    Attributes:
        node: the node where a limit was passed.
        alias: ordinal (in document order, from 0) of the alias being expanded
            there, or None when the node is written out in the document.
        kind: ``recursive``, ``nodes`` or ``depth``.
    """

    def __init__(self, node: yaml.Node, alias: int | None, kind: str):
        self.node = node
        self.alias = alias
        self.kind = kind


class _ExpansionWalk:
    """Count the nodes of a composed document as construction would expand them."""

    def __init__(self) -> None:
        self.count = 0
        self.aliases_met = 0
        self.written: set[int] = set()  # ids of nodes met where they are written
        self.open: set[int] = set()  # ids of the collections enclosing the current node

    def visit(self, node: yaml.Node, depth: int, alias: int | None) -> None:
        """Walk ``node`` at ``depth``; ``alias`` is the ordinal of the alias being expanded.

        Outside an expansion, meeting a node for the second time is an alias
        (composition shares the anchor's node), and aliases are met in the
        order of their AliasEvents, which names them in the error path.
        """
        node_id = id(node)
        if alias is None:
            if node_id in self.written:
                alias = self.aliases_met
                self.aliases_met += 1
            else:
                self.written.add(node_id)
        if node_id in self.open:
            raise _ExpansionRefused(node, alias, "recursive")
        self.count += 1
        if self.count > MAX_YAML_NODES:
            raise _ExpansionRefused(node, alias, "nodes")
        if depth > MAX_YAML_DEPTH:
            raise _ExpansionRefused(node, alias, "depth")
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            return
        self.open.add(node_id)
        for child in children:
            self.visit(child, depth + 1, alias)
        self.open.discard(node_id)


def _check_expansion(filename: str, text: str, root: yaml.Node) -> None:
    """Refuse a composed document that would expand past the limits, before it is constructed.

    The walk stops at the first node over :data:`MAX_YAML_NODES` or
    :data:`MAX_YAML_DEPTH`, so it costs at most that many steps, and its
    recursion is at most :data:`MAX_YAML_DEPTH` deep.

    Raises:
        ConfigError: one issue: ``recursive alias *a``, ``alias *a expands the
            document to more than 20000 nodes``, ``alias *a nests deeper than
            50 levels`` (at the alias's line), or ``the document has more than
            20000 nodes`` / ``nesting deeper than 50 levels`` (at the node's line).
    """
    try:
        _ExpansionWalk().visit(root, 1, None)
    except _ExpansionRefused as refused:
        line = refused.node.start_mark.line + 1
        name = ""
        if refused.alias is not None:
            # Composed nodes do not remember the alias that reached them; the
            # events do, in the same order (only parsed on this error path).
            event = _alias_event(text, refused.alias)
            if event is not None:
                name, line = f"*{event.anchor}", event.start_mark.line + 1
        if refused.kind == "recursive":
            reason = f"recursive alias {name}".rstrip()
        elif refused.kind == "nodes":
            reason = (
                f"alias {name} expands the document to more than {MAX_YAML_NODES} nodes"
                if name
                else f"the document has more than {MAX_YAML_NODES} nodes"
            )
        else:
            reason = (
                f"alias {name} nests deeper than {MAX_YAML_DEPTH} levels"
                if name
                else f"nesting deeper than {MAX_YAML_DEPTH} levels"
            )
        raise ConfigError([ConfigIssue(filename, line, "", reason)]) from None


def _alias_event(text: str, ordinal: int) -> yaml.AliasEvent | None:
    """The ``ordinal``-th (from 0) alias of ``text``, in document order."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            if ordinal == 0:
                return event
            ordinal -= 1
    return None


def format_path(path: list[str | int]) -> str:
    """Render ``["features", "booking", "tables", 0, "id"]`` as ``features.booking.tables[0].id``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
