"""The catalog as a file a studio keeps in git: YAML or JSON with the API's ``{currencies, items}``.

Reading keeps where every node was, so a problem found by the store (a field path like
``items.3.prices.0.amount``) is shown at the file's line::

    catalog.yaml:41: items[3] (potion) prices[0].amount: Must be greater than or equal to 0 ...

YAML is read with YAML 1.2's plain scalars rather than PyYAML's YAML 1.1 ones, so a file means
the same as its JSON twin: ``yes``/``on`` stay strings, an unquoted date stays a string (the store
checks it as RFC 3339), ``1:30`` is not sexagesimal; ``1_000_000`` is allowed for readability.
Duplicate keys, non-string keys and values JSON cannot carry are refused with their line.

Writing puts fields in one fixed, readable order and leaves out fields at their default, so a
pull of the same catalog always gives the same bytes and a diff in git shows only real changes.

A file is checked by the store it goes to, never here: ``shopkeep catalog diff`` sends it to
``POST /v1/admin/catalog/validate`` and ``push`` to ``PUT /v1/admin/catalog/draft``, and the
store's field paths come back to the file's lines through :meth:`CatalogFile.problems`. The
comparison of two catalogs is :mod:`shopkeep.catalog_diff`. This module adds only what is
about files: lines, YAML and JSON, a stable written order. YAML needs PyYAML (the ``cli``
extra: ``pip install 'shopkeep[cli]'``), imported only when a YAML file is read or written.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from .catalog_diff import (
    CATALOG_PARTS,
    CURRENCY_DEFAULTS,
    CURRENCY_FIELDS,
    ENTRY_FIELDS,
    ITEM_DEFAULTS,
    ITEM_FIELDS,
    PRODUCT_FIELDS,
    TIMESTAMP_FIELDS,
    describe,
    part_entry,
    short_timestamp,
)

Format = Literal["yaml", "json"]

# A written file lists fields in the schemas' order and leaves out those at the value the store
# fills in: the mirror of the server's schemas in shopkeep.catalog_diff, none stated here.

YAML_HEADER = (
    "# Shopkeep catalog. Amounts are integers in each currency's minor unit.\n"
    "# Check it with `shopkeep catalog diff FILE`, send it with `shopkeep catalog push FILE`.\n"
)

MAX_DEPTH = 64


# ---------------------------------------------------------------------------------------------
# Problems, with the line they are on
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a catalog file: where (line and field) and what."""

    line: int | None
    where: str
    message: str

    def render(self, filename: str) -> str:
        """``FILE:LINE: where: message``, the form editors and CI logs link to."""
        place = f"{filename}:{self.line}" if self.line is not None else filename
        where = f"{self.where}: " if self.where else ""
        return f"{place}: {where}{self.message}"


class CatalogFileError(Exception):
    """A catalog file that cannot be used as it is; ``problems`` says where and why."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        super().__init__("\n".join(p.render(filename) for p in problems))


# ---------------------------------------------------------------------------------------------
# Where each node of a file is
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Loc:
    """The line of a value and, for containers, of what is inside it."""

    line: int
    keys: dict[str, tuple[int, _Loc]] | None = None  # mapping: key -> (line of the key, value)
    items: list[_Loc] | None = None  # sequence


def _line_of(root: _Loc | None, field_path: str) -> int | None:
    """The line of the deepest node of ``field_path`` the file has: the key's line for a
    field, the entry's first line for a list entry. A missing field (``Missing data for
    required field.``) points at the entry that lacks it."""
    if root is None:
        return None
    node, line = root, root.line
    for segment in field_path.split("."):
        if segment == "_schema":
            break
        if node.keys is not None and segment in node.keys:
            line, node = node.keys[segment]
        elif node.items is not None and segment.isdigit() and int(segment) < len(node.items):
            node = node.items[int(segment)]
            line = node.line
        else:
            break
    return line


# ---------------------------------------------------------------------------------------------
# A loaded file
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CatalogFile:
    """A catalog file as read: its data (JSON types only, exactly as written) and where each
    node was, to point the store's field paths at lines."""

    filename: str
    format: Format
    data: dict[str, Any]
    _root: _Loc | None = dataclasses.field(default=None, repr=False, compare=False)

    def line_of(self, field_path: str) -> int | None:
        """The line of a field path like ``items.3.prices.0.amount`` (see :func:`_line_of`)."""
        return _line_of(self._root, field_path)

    def problems(self, details: Mapping[str, Iterable[str]]) -> list[Problem]:
        """The store's ``validation_failed`` details as problems with lines, in file order."""
        found = [
            Problem(self.line_of(path), describe(path, self.data), message)
            for path, messages in details.items()
            for message in messages
        ]
        return sorted(found, key=lambda p: (p.line or 0, p.where))

    def error(self, details: Mapping[str, Iterable[str]]) -> CatalogFileError:
        return CatalogFileError(self.filename, self.problems(details))


def format_of(path: Path | str) -> Format:
    """JSON for ``.json``, YAML for anything else (``.yaml``, ``.yml``)."""
    return "json" if str(path).lower().endswith(".json") else "yaml"


def load_file(path: Path) -> CatalogFile:
    """Reads a catalog file; raises CatalogFileError with lines for anything unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogFileError(str(path), [Problem(None, "", f"not UTF-8 text: {exc}")]) from exc
    return loads(text, filename=str(path), format=format_of(path))


def loads(text: str, *, filename: str = "<catalog>", format: Format = "yaml") -> CatalogFile:
    """Parses catalog text (see :func:`load_file`)."""
    problems: list[Problem] = []
    if format == "json":
        data, root = _parse_json(text, filename)
    else:
        data, root = _parse_yaml(text, filename, problems)
    if problems:
        raise CatalogFileError(filename, sorted(problems, key=lambda p: p.line or 0))
    if not isinstance(data, dict):
        line = root.line if root is not None else None
        raise CatalogFileError(
            filename, [Problem(line, "", "a catalog is a mapping with currencies and items")]
        )
    return CatalogFile(filename, format, data, root)


# --- YAML -------------------------------------------------------------------------------------

_TAG_BOOL = "tag:yaml.org,2002:bool"
_TAG_INT = "tag:yaml.org,2002:int"
_TAG_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_TAG_STR = "tag:yaml.org,2002:str"


YAML_NEEDS = "YAML files need PyYAML: pip install 'shopkeep[cli]' (or read a .json file)"


@functools.cache
def _yaml() -> ModuleType:
    """PyYAML, imported on first use: the SDK itself needs only httpx."""
    try:
        import yaml
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(YAML_NEEDS, name="yaml") from exc
    return yaml


@functools.cache
def _loader_class() -> Any:
    """SafeLoader with YAML 1.2's meaning of plain booleans and integers and no timestamps."""
    yaml = _yaml()

    class Loader(yaml.SafeLoader):  # type: ignore[name-defined]
        pass

    dropped = (_TAG_BOOL, _TAG_INT, _TAG_TIMESTAMP)
    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in dropped]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        _TAG_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    Loader.add_implicit_resolver(
        _TAG_INT, re.compile(r"^[-+]?(?:0|[1-9](?:_?[0-9])*)$"), list("-+0123456789")
    )
    return Loader


def _parse_yaml(text: str, filename: str, problems: list[Problem]) -> tuple[Any, _Loc | None]:
    yaml = _yaml()
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        return _construct(loader, node, problems, depth=0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise CatalogFileError(filename, [Problem(line, "", f"YAML: {message}")]) from exc
    except yaml.YAMLError as exc:
        raise CatalogFileError(filename, [Problem(None, "", f"YAML: {exc}")]) from exc
    finally:
        loader.dispose()


def _construct(loader: Any, node: Any, problems: list[Problem], *, depth: int) -> tuple[Any, _Loc]:
    """Builds the value of a node and its locations; problems are collected, not raised, so a
    file with several mistakes shows them all at once."""
    yaml = _yaml()
    line = node.start_mark.line + 1
    if depth > MAX_DEPTH:
        problems.append(Problem(line, "", f"nested more than {MAX_DEPTH} levels deep"))
        return None, _Loc(line)
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_object(node)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(line, "", f"{node.value} is not a JSON number"))
        elif not isinstance(value, str | int | float | bool | type(None)):
            problems.append(
                Problem(line, "", f"{node.value!r} is not a JSON value: quote it to make it text")
            )
        return value, _Loc(line)
    if isinstance(node, yaml.SequenceNode):
        values, locs = [], []
        for child in node.value:
            value, loc = _construct(loader, child, problems, depth=depth + 1)
            values.append(value)
            locs.append(loc)
        return values, _Loc(line, items=locs)
    assert isinstance(node, yaml.MappingNode)
    loader.flatten_mapping(node)  # YAML merge keys (<<: *defaults)
    mapping: dict[str, Any] = {}
    keys: dict[str, tuple[int, _Loc]] = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            problems.append(Problem(key_line, "", "keys must be text (JSON has no other keys)"))
            continue
        if key in mapping:
            problems.append(Problem(key_line, "", f"{key!r} appears twice in the same mapping"))
            continue
        value, loc = _construct(loader, value_node, problems, depth=depth + 1)
        mapping[key] = value
        keys[key] = (key_line, loc)
    return mapping, _Loc(line, keys=keys)


# --- JSON -------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _JsonScanner:
    """Parses JSON exactly like ``json.loads`` (scalars are decoded by it), remembering the
    line of every value and key."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self.decoder = json.JSONDecoder(parse_constant=_refuse_constant)

    def line(self, index: int) -> int:
        return bisect.bisect_right(self.newlines, index - 1) + 1

    def skip(self, index: int) -> int:
        match = _WHITESPACE.match(self.text, index)
        assert match is not None
        return match.end()

    def fail(self, message: str, index: int) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.text, index)

    def value(self, index: int, depth: int) -> tuple[Any, _Loc, int]:
        index = self.skip(index)
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep", index)
        line = self.line(index)
        char = self.text[index : index + 1]
        if char == "{":
            return self.object(index + 1, line, depth)
        if char == "[":
            return self.array(index + 1, line, depth)
        value, end = self.decoder.raw_decode(self.text, index)
        return value, _Loc(line), end

    def object(self, index: int, line: int, depth: int) -> tuple[Any, _Loc, int]:
        mapping: dict[str, Any] = {}
        keys: dict[str, tuple[int, _Loc]] = {}
        index = self.skip(index)
        if self.text.startswith("}", index):
            return mapping, _Loc(line, keys=keys), index + 1
        while True:
            index = self.skip(index)
            if not self.text.startswith('"', index):
                raise self.fail("Expecting property name enclosed in double quotes", index)
            key_line = self.line(index)
            key, index = json.decoder.scanstring(self.text, index + 1)  # type: ignore[attr-defined]
            if key in mapping:
                raise self.fail(f"{key!r} appears twice in the same object", index)
            index = self.skip(index)
            if not self.text.startswith(":", index):
                raise self.fail("Expecting ':' delimiter", index)
            value, loc, index = self.value(index + 1, depth + 1)
            mapping[key] = value
            keys[key] = (key_line, loc)
            index = self.skip(index)
            if self.text.startswith(",", index):
                index += 1
            elif self.text.startswith("}", index):
                return mapping, _Loc(line, keys=keys), index + 1
            else:
                raise self.fail("Expecting ',' delimiter", index)

    def array(self, index: int, line: int, depth: int) -> tuple[Any, _Loc, int]:
        values: list[Any] = []
        locs: list[_Loc] = []
        index = self.skip(index)
        if self.text.startswith("]", index):
            return values, _Loc(line, items=locs), index + 1
        while True:
            value, loc, index = self.value(index, depth + 1)
            values.append(value)
            locs.append(loc)
            index = self.skip(index)
            if self.text.startswith(",", index):
                index += 1
            elif self.text.startswith("]", index):
                return values, _Loc(line, items=locs), index + 1
            else:
                raise self.fail("Expecting ',' delimiter", index)


def _parse_json(text: str, filename: str) -> tuple[Any, _Loc | None]:
    scanner = _JsonScanner(text)
    try:
        value, loc, end = scanner.value(0, 0)
        end = scanner.skip(end)
        if end != len(text):
            raise scanner.fail("Extra data", end)
    except json.JSONDecodeError as exc:
        raise CatalogFileError(filename, [Problem(exc.lineno, "", f"JSON: {exc.msg}")]) from exc
    except ValueError as exc:  # NaN, Infinity
        raise CatalogFileError(filename, [Problem(None, "", f"JSON: {exc}")]) from exc
    return value, loc


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _ordered(
    entry: Mapping[str, Any], fields: tuple[str, ...], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        if name in entry and not (name in defaults and entry[name] == defaults[name]):
            out[name] = short_timestamp(entry[name]) if name in TIMESTAMP_FIELDS else entry[name]
    # Fields this version does not know are kept, after the known ones, so nothing is lost.
    for name in sorted(set(entry) - set(fields)):
        out[name] = entry[name]
    return out


def _money_or_content(entry: Any) -> Any:
    if not isinstance(entry, Mapping):
        return entry
    return {name: entry[name] for name in ENTRY_FIELDS if name in entry} | {
        name: entry[name] for name in sorted(entry) if name not in ENTRY_FIELDS
    }


def ordered_catalog(catalog: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog in the file's fixed order, defaults left out."""
    items = []
    for item in catalog.get("items", []):
        entry = _ordered(item, ITEM_FIELDS, ITEM_DEFAULTS)
        for name in ("prices", "contents"):
            if isinstance(entry.get(name), list):
                entry[name] = [_money_or_content(e) for e in entry[name]]
        items.append(entry)
    ordered: dict[str, Any] = {
        "currencies": [
            _ordered(c, CURRENCY_FIELDS, CURRENCY_DEFAULTS) for c in catalog.get("currencies", [])
        ],
        "items": items,
    }
    # Real-money products, when there are any (none is the default, left out like others).
    if catalog.get("products"):
        ordered["products"] = [_ordered(p, PRODUCT_FIELDS, {}) for p in catalog["products"]]
    # Segments, offers and promo codes after the items, each only when the catalog has some.
    for name in CATALOG_PARTS:
        entries = catalog.get(name)
        if isinstance(entries, list) and entries:
            ordered[name] = [part_entry(name, e) if isinstance(e, Mapping) else e for e in entries]
    return ordered


class _FlowList(list):
    """A short list of plain values, written on one line: ``tags: [weapon, skin]``."""


class _FlowDict(dict):
    """A price or a bundle entry, written on one line: ``- {currency: COINS, amount: 50}``."""


@functools.cache
def _dumper_class() -> Any:
    """SafeDumper that indents lists under their key, the way people write YAML by hand, and
    writes short entries on one line."""
    yaml = _yaml()

    class Dumper(yaml.SafeDumper):  # type: ignore[name-defined]
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)

    def represent_str(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar(_TAG_STR, value, style=style)

    def represent_dict(dumper: Any, value: dict[str, Any]) -> Any:
        return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=False)

    Dumper.add_representer(str, represent_str)
    Dumper.add_representer(dict, represent_dict)
    Dumper.add_representer(
        _FlowList,
        lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", list(v), flow_style=True),
    )
    Dumper.add_representer(
        _FlowDict,
        lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True),
    )
    return Dumper


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None))


def _styled(value: Any, *, in_list: bool = False) -> Any:
    if isinstance(value, dict):
        # An entry of a list, or an amount (an offer's price): on one line.
        is_amount = set(value) == {"currency", "amount"}
        short = len(value) <= 2 and all(_is_scalar(v) for v in value.values())
        if short and (in_list or is_amount):
            return _FlowDict(value)
        return {k: _styled(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(_is_scalar(v) for v in value):
            return _FlowList(value)
        return [_styled(v, in_list=True) for v in value]
    return value


def dumps(catalog: Mapping[str, Any], format: Format = "yaml") -> str:
    """The catalog as file text, in a stable order (same catalog, same bytes)."""
    ordered = ordered_catalog(catalog)
    if format == "json":
        return json.dumps(ordered, indent=2, ensure_ascii=False) + "\n"
    body = _yaml().dump(
        _styled(ordered),
        Dumper=_dumper_class(),
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return YAML_HEADER + body
