"""Convert a YAML block into a msgspec Struct, reporting every problem at its own line.

``msgspec.convert`` stops at the first error of a Struct, and an error raised
by a ``__post_init__`` (a cross-field check such as "unknown weekday") is
located at the Struct itself. :func:`convert_reporting_all` converts once
and, only when that fails, looks again field by field:

1. each field of the block is converted against its own type; a failing
   container or nested Struct is searched the same way, so ``items[3].price``
   and ``items[5].sku`` are both reported, each at its line;
2. the Struct is then converted without the failing fields to reach its
   ``__post_init__`` checks. An error there is placed at the value it quotes
   (``unknown weekday 'xyz'`` at the ``xyz`` key), that value is left out and
   the check repeated, so several such errors are reported too. An error that
   names a field which already failed, or quotes a value inside one, is a
   consequence of that failure and is not reported.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from typing import Any

import msgspec

from core.config.model import ConfigIssue, YamlDocument, format_path, validation_issue

__all__ = ["convert_reporting_all"]

Path = list[str | int]

_QUOTED = re.compile(r"'([^']*)'")
# Bounds the re-checks of step 2; each round leaves out one more value.
_MAX_CROSS_FIELD_ROUNDS = 20


def convert_reporting_all(
    doc: YamlDocument, data: Any, struct_type: type[msgspec.Struct], base: Path
) -> tuple[msgspec.Struct | None, list[ConfigIssue]]:
    """Convert ``data`` (found at ``base`` in ``doc``) to ``struct_type`` (strict).

    Args:
        doc: the parsed tenant file, for line numbers.
        data: the block as read from YAML (a dict, or anything the user wrote).
        struct_type: the Struct to build.
        base: where ``data`` sits in the file (``["features", "booking"]``).

    Returns:
        ``(value, [])`` when the block is valid, else ``(None, issues)`` with at
        least one issue, each at the line of the offending key or value.
    """
    try:
        return msgspec.convert(data, struct_type, strict=True), []
    except msgspec.ValidationError as error:
        first_error = error
    issues = _struct_issues(doc, data, struct_type, base)
    return None, issues or [validation_issue(doc, first_error, base, data)]


def _value_issues(doc: YamlDocument, value: Any, value_type: Any, path: Path) -> list[ConfigIssue]:
    """Issues of ``value`` against ``value_type``, searched inside containers and Structs."""
    try:
        msgspec.convert(value, value_type, strict=True)
        return []
    except msgspec.ValidationError as error:
        whole = error
    inner = _plain_type(value_type, value)
    origin = typing.get_origin(inner)
    arguments = typing.get_args(inner)
    found: list[ConfigIssue] = []
    if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
        found = _struct_issues(doc, value, inner, path)
    elif origin in (list, set, frozenset, tuple) and isinstance(value, list) and arguments:
        # tuple[T, ...] only: a fixed-shape tuple keeps msgspec's own message.
        if origin is tuple and (len(arguments) != 2 or arguments[1] is not ...):
            arguments = ()
        for index, item in enumerate(value if arguments else ()):
            found += _value_issues(doc, item, arguments[0], [*path, index])
    elif origin is dict and isinstance(value, dict) and len(arguments) == 2:
        key_type, item_type = arguments
        for key, item in value.items():
            try:
                msgspec.convert(key, key_type, strict=True)
            except msgspec.ValidationError as key_error:
                found.append(doc.issue([*path, key], "key " + _plain_message(str(key_error), key)))
                continue
            found += _value_issues(doc, item, item_type, [*path, key])
    # Nothing more precise (a scalar, a union, a length or size constraint on
    # the container itself): msgspec's own message, at its own path.
    return found or [validation_issue(doc, whole, path, value)]


def _struct_issues(
    doc: YamlDocument, data: Any, struct_type: type[msgspec.Struct], base: Path
) -> list[ConfigIssue]:
    """Issues of a block that failed to convert to ``struct_type`` (see the module docstring)."""
    if not isinstance(data, dict):
        return []
    fields = {field.encode_name: field for field in msgspec.structs.fields(struct_type)}
    forbid_unknown = struct_type.__struct_config__.forbid_unknown_fields
    issues: list[ConfigIssue] = []
    remaining: dict[str, Any] = {}
    failed: set[str] = set()  # fields left out as a whole
    left_out: set[str] = set()  # names of the entries left out (see _identities)
    # Original positions of the entries kept in each list shortened so far, by
    # the list's path in ``data``: problems are reported at their place in the file.
    kept: dict[tuple[str | int, ...], list[int]] = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            if forbid_unknown:
                issues.append(doc.issue([*base, key], "unknown field"))
                failed.add(str(key))
            continue
        problems = _value_issues(doc, value, field.type, [*base, key])
        if not problems:
            remaining[key] = copy.deepcopy(value)
            continue
        issues += problems
        pruned = _without_bad_entries(value, field.type)
        if pruned is None:
            failed.add(key)
            left_out |= _identities(value, entries=True)
        else:
            remaining[key], bad_entries = pruned
            if isinstance(value, list):
                kept[(key,)] = [i for i, item in enumerate(value) if item not in bad_entries]
            for entry in bad_entries:
                left_out |= _identities(entry)
    for name, field in fields.items():
        if name not in data and field.required:
            message = f"missing required field {name!r}"
            located = doc.issue(base, message)
            issues.append(
                ConfigIssue(located.file, located.line, format_path([*base, name]), message)
            )
            failed.add(name)
    issues += _cross_field_issues(doc, remaining, struct_type, fields, failed, left_out, kept, base)
    return issues


def _without_bad_entries(value: Any, field_type: Any) -> tuple[Any, list[Any]] | None:
    """``value`` (a list or mapping) without its invalid entries, and those entries.

    None when the field cannot stand without them: it is no container, every
    entry is bad, or what is left is still invalid (a length constraint).
    Entries of a mapping are returned as their keys.
    """
    inner = _plain_type(field_type, value)
    origin, arguments = typing.get_origin(inner), typing.get_args(inner)
    if origin in (list, set, frozenset) and isinstance(value, list) and arguments:
        good: Any = [item for item in value if _valid(item, arguments[0])]
        bad = [item for item in value if not _valid(item, arguments[0])]
    elif origin is dict and isinstance(value, dict) and len(arguments) == 2:
        good = {
            k: v for k, v in value.items() if _valid(k, arguments[0]) and _valid(v, arguments[1])
        }
        bad = [k for k in value if k not in good]
    else:
        return None
    if not good or not bad or not _valid(good, field_type):
        return None
    return copy.deepcopy(good), bad


def _valid(value: Any, value_type: Any) -> bool:
    try:
        msgspec.convert(value, value_type, strict=True)
    except msgspec.ValidationError:
        return False
    return True


def _identities(entry: Any, *, entries: bool = False) -> set[str]:
    """The names other settings use to refer to ``entry``.

    A string is its own name; a mapping entry of a list (a table, a store) is
    named by its ``id``-like field (``id``, ``sku``, ``code``, ``slug``,
    ``key``), else by its first value. With ``entries``, ``entry`` is a whole
    field: the names of every entry of the list, or the keys of the mapping.
    """
    if entries:
        if isinstance(entry, list):
            return set().union(*(_identities(item) for item in entry))
        if isinstance(entry, dict):
            return {str(key) for key in entry}
    if isinstance(entry, str):
        return {entry}
    if isinstance(entry, dict) and entry:
        named = [entry[k] for k in ("id", "sku", "code", "slug", "key") if k in entry]
        first = next(iter(entry.values()))
        return {str(v) for v in (named or [first]) if isinstance(v, str | int)}
    return set()


def _cross_field_issues(
    doc: YamlDocument,
    remaining: dict[str, Any],
    struct_type: type[msgspec.Struct],
    fields: dict[str, msgspec.structs.FieldInfo],
    failed: set[str],
    left_out: set[str],
    kept: dict[tuple[str | int, ...], list[int]],
    base: Path,
) -> list[ConfigIssue]:
    """Errors of ``__post_init__`` on the valid part of a block, each at the value it quotes.

    Args:
        remaining: the block without what failed (changed in place).
        failed: fields left out as a whole; a message naming one is a consequence.
        left_out: names of the entries left out; a message quoting one is a consequence.
        kept: original positions of the entries of shortened lists (changed in place).
    """

    def in_file(path: Path) -> Path:
        """``path`` in ``remaining`` as a path in the block as written."""
        original: Path = []
        node: Any = remaining
        for part in path:
            positions = kept.get(tuple(original)) if isinstance(node, list) else None
            original.append(positions[part] if positions is not None else part)
            node = node[part]
        return original

    issues: list[ConfigIssue] = []
    for _ in range(_MAX_CROSS_FIELD_ROUNDS):
        try:
            msgspec.convert(remaining, struct_type, strict=True)
            return issues
        except msgspec.ValidationError as error:
            message = str(error).split(" - at `", 1)[0]
        if _follows_from(message, failed, left_out):
            return issues
        location = _locate(message, remaining)
        field = str(location[0]) if location else None
        if field is not None:
            message = message.removeprefix(f"{field}: ")
        issues.append(doc.issue([*base, *in_file(location)], _plain_message(message)))
        if field is None:
            return issues
        # Leave out the smallest entry of a list or mapping holding the problem
        # (a weekday, one table), or else the whole field, and check again.
        for depth in range(len(location) - 1, 0, -1):
            if _type_at(fields[field].type, location[1:depth]) in (list, dict):
                container = _lookup(remaining, location[:depth])
                entry = location[depth]
                if isinstance(container, dict):
                    left_out.add(str(entry))
                else:
                    left_out |= _identities(container[entry])
                    positions = kept.setdefault(
                        tuple(in_file(location[:depth])), list(range(len(container)))
                    )
                    del positions[entry]
                del container[entry]
                break
        else:
            left_out |= _identities(remaining.pop(field, None), entries=True)
            failed.add(field)
    return issues


def _follows_from(message: str, failed: set[str], left_out: set[str]) -> bool:
    """True when ``message`` names a failed field (or its singular) or quotes a left-out entry."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    for name in failed:
        singulars = {name[:-1]} if name.endswith("s") else set()
        if name.endswith("ies"):
            singulars.add(name[:-3] + "y")
        if name in words or singulars & words:
            return True
    return any(value in left_out for value in _QUOTED.findall(message))


def _locate(message: str, data: dict[str, Any]) -> Path:
    """Where in ``data`` the problem of ``message`` is.

    The last quoted value that occurs exactly once in ``data`` (as a key or a
    string) wins: messages quote the offending value last ("'t1' is combinable
    with unknown table 't9'"). Otherwise a leading ``field:`` of the message,
    otherwise the block itself.
    """
    for value in reversed(_QUOTED.findall(message)):
        places = _occurrences(data, value, [])
        if len(places) == 1:
            return places[0]
    prefix = re.match(r"([A-Za-z_][A-Za-z0-9_]*): ", message)
    if prefix and prefix.group(1) in data:
        return [prefix.group(1)]
    return []


def _occurrences(data: Any, value: str, path: Path) -> list[Path]:
    """Paths under ``data`` of every dict key or string equal to ``value``."""
    found: list[Path] = []
    if isinstance(data, dict):
        for key, item in data.items():
            if key == value:
                found.append([*path, key])
            found += _occurrences(item, value, [*path, key])
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += _occurrences(item, value, [*path, index])
    elif data == value and path:
        found.append(path)
    return found


def _lookup(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


def _type_at(field_type: Any, path: Path) -> type | None:
    """The container kind (``list``, ``dict``) or Struct holding ``path`` inside ``field_type``."""
    current = field_type
    for part in path:
        inner = _plain_type(current, None)
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            match = [f for f in msgspec.structs.fields(inner) if f.encode_name == part]
            if not match:
                return None
            current = match[0].type
        else:
            arguments = typing.get_args(inner)
            if not arguments:
                return None
            current = arguments[-1] if typing.get_origin(inner) is dict else arguments[0]
    inner = _plain_type(current, None)
    origin = typing.get_origin(inner) or inner
    if origin in (list, tuple, set, frozenset):
        return list
    if origin is dict:
        return dict
    return inner if isinstance(inner, type) and issubclass(inner, msgspec.Struct) else None


def _plain_type(value_type: Any, value: Any) -> Any:
    """``value_type`` without ``Annotated`` and, for a value that is not None, without ``| None``."""
    while typing.get_origin(value_type) is typing.Annotated:
        value_type = typing.get_args(value_type)[0]
    if typing.get_origin(value_type) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(value_type) if a is not type(None)]
        if len(arms) == 1 and value is not None:
            return _plain_type(arms[0], value)
    return value_type


def _plain_message(message: str, value: Any = None) -> str:
    """msgspec's wording in the style of :func:`core.config.model.validation_issue`."""
    message = message.split(" - at `", 1)[0].replace("`", "")
    message = message[:1].lower() + message[1:]
    if value is not None and not isinstance(value, dict | list):
        message = message.split(", got ")[0] + f", got {msgspec.json.encode(value).decode()}"
    return message
