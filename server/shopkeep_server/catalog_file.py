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

This module also holds the comparison of two catalogs (per item and field) used by
``shopkeep catalog diff`` and by the studio page.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from shopkeep.money import Money

from .errors import ValidationFailed
from .store import rules

Format = Literal["yaml", "json"]

CURRENCY_FIELDS = tuple(rules.CurrencySchema().fields)
# The store's own field list, in its declaration order (the order a written file uses).
ITEM_FIELDS = tuple(rules.ItemSchema().fields)
# What the store fills in for a field left out (store/rules.py's load_default): a written file
# leaves these out, and a comparison fills them in, so leaving one out is never a difference.
CURRENCY_DEFAULTS: dict[str, Any] = {"max_balance": None}
ITEM_DEFAULTS: dict[str, Any] = {
    "description": "",
    "contents": [],
    "stock": None,
    "per_player_limit": None,
    "available_from": None,
    "available_until": None,
    "tags": [],
    "metadata": {},
}
TIMESTAMP_FIELDS = ("available_from", "available_until")

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


def describe(field_path: str, data: Any) -> str:
    """A field path as a person reads it: ``items.3.prices.0.amount`` becomes
    ``items[3] (potion) prices[0].amount``; the sku (or currency code) names the entry."""
    out = ""
    node: Any = data
    after_label = False
    segments = field_path.split(".")
    for index, segment in enumerate(segments):
        if segment == "_schema":
            break
        if segment.isdigit() and out:
            out += f"[{segment}]"
            position = int(segment)
            node = node[position] if isinstance(node, list) and position < len(node) else None
            if index == 1 and segments[0] in ("items", "currencies") and isinstance(node, dict):
                label = node.get("sku" if segments[0] == "items" else "code")
                if isinstance(label, str) and label:
                    out += f" ({label})"
                    after_label = True
            continue
        if out:
            out += " " if after_label else "."
        after_label = False
        out += segment
        node = node.get(segment) if isinstance(node, dict) else None
    return out


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


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's meaning of plain booleans and integers and no timestamps."""


_DROPPED = (_TAG_BOOL, _TAG_INT, _TAG_TIMESTAMP)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _TAG_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _TAG_INT, re.compile(r"^[-+]?(?:0|[1-9](?:_?[0-9])*)$"), list("-+0123456789")
)


def _parse_yaml(text: str, filename: str, problems: list[Problem]) -> tuple[Any, _Loc | None]:
    loader = _Loader(text)
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


def _construct(
    loader: _Loader, node: yaml.Node, problems: list[Problem], *, depth: int
) -> tuple[Any, _Loc]:
    """Builds the value of a node and its locations; problems are collected, not raised, so a
    file with several mistakes shows them all at once."""
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
# Checking and normalizing without a server
# ---------------------------------------------------------------------------------------------

_catalog_schema = rules.CatalogSchema()


def normalize(data: Any) -> dict[str, Any]:
    """The catalog as the store keeps it: every field present, timestamps in the store's
    format. Uses the store's own schema, so it refuses what the store would refuse on its
    fields (references between entries are the store's to check); raises ValidationFailed."""
    loaded = rules.load(_catalog_schema, data)
    errors: dict[str, list[str]] = {}
    for section, key in (("currencies", "code"), ("items", "sku")):
        seen: set[str] = set()
        for index, entry in enumerate(loaded[section]):
            if entry[key] in seen:
                errors.setdefault(f"{section}.{index}.{key}", []).append(
                    f"{entry[key]} appears twice"
                )
            seen.add(entry[key])
    if errors:
        raise ValidationFailed(details=errors)
    items = [
        {**item, **{name: rules.format_timestamp(item[name]) for name in TIMESTAMP_FIELDS}}
        for item in loaded["items"]
    ]
    return {"currencies": loaded["currencies"], "items": items}


def check(catalog_file: CatalogFile) -> dict[str, Any]:
    """:func:`normalize` for a file: the store's field messages at the file's lines."""
    try:
        return normalize(catalog_file.data)
    except ValidationFailed as exc:
        raise catalog_file.error(exc.details) from exc


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _short_timestamp(value: Any) -> Any:
    """``2025-06-01T12:00:00.000000Z`` as ``2025-06-01T12:00:00Z``: the same instant, easier
    to read and to type."""
    if isinstance(value, str) and value.endswith(".000000Z"):
        return value[: -len(".000000Z")] + "Z"
    return value


def _ordered(entry: Mapping[str, Any], fields: tuple[str, ...], defaults: dict[str, Any]) -> dict:
    out: dict[str, Any] = {}
    for name in fields:
        if name in entry and not (name in defaults and entry[name] == defaults[name]):
            out[name] = _short_timestamp(entry[name]) if name in TIMESTAMP_FIELDS else entry[name]
    # Fields this version does not know are kept, after the known ones, so nothing is lost.
    for name in sorted(set(entry) - set(fields)):
        out[name] = entry[name]
    return out


def _money_or_content(entry: Any) -> Any:
    if not isinstance(entry, Mapping):
        return entry
    order = ("sku", "quantity", "currency", "amount")
    return {name: entry[name] for name in order if name in entry} | {
        name: entry[name] for name in sorted(entry) if name not in order
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
    return {
        "currencies": [
            _ordered(c, CURRENCY_FIELDS, CURRENCY_DEFAULTS) for c in catalog.get("currencies", [])
        ],
        "items": items,
    }


class _FlowList(list):
    """A short list of plain values, written on one line: ``tags: [weapon, skin]``."""


class _FlowDict(dict):
    """A price or a bundle entry, written on one line: ``- {currency: COINS, amount: 50}``."""


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, the way people write YAML by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar(_TAG_STR, value, style=style)


def _represent_dict(dumper: yaml.SafeDumper, value: dict) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=False)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(
    _FlowList,
    lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", list(v), flow_style=True),
)
_Dumper.add_representer(
    _FlowDict,
    lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True),
)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None))


def _styled(value: Any, *, in_list: bool = False) -> Any:
    if isinstance(value, dict):
        if in_list and len(value) <= 2 and all(_is_scalar(v) for v in value.values()):
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
    body = yaml.dump(
        _styled(ordered),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return YAML_HEADER + body


# ---------------------------------------------------------------------------------------------
# Comparing two catalogs
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of an entry that differs."""

    field: str
    before: Any
    after: Any


@dataclasses.dataclass(frozen=True, slots=True)
class EntryChange:
    """A currency or an item that was added, removed or changed (with its fields)."""

    key: str
    status: Literal["added", "removed", "changed"]
    entry: dict[str, Any]  # the entry after the change (before it, for a removal)
    fields: tuple[FieldChange, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogDiff:
    """What changes from one catalog to another, per currency, per item and per field."""

    currencies: tuple[EntryChange, ...]
    items: tuple[EntryChange, ...]
    items_reordered: bool
    # Each side's currency scales, so amounts print in major units: 150 at scale 4 is 0.0150.
    before_scales: Mapping[str, int] = dataclasses.field(default_factory=dict)
    after_scales: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.currencies or self.items or self.items_reordered)

    def summary(self) -> str:
        """``items: 1 changed, 1 added; currencies: 1 removed`` or ``no differences``."""
        parts = []
        for name, changes in (("items", self.items), ("currencies", self.currencies)):
            counts = [
                f"{sum(1 for c in changes if c.status == status)} {status}"
                for status in ("changed", "added", "removed")
                if any(c.status == status for c in changes)
            ]
            if counts:
                parts.append(f"{name}: {', '.join(counts)}")
        if self.items_reordered:
            parts.append("order of items changed")
        return "; ".join(parts) if parts else "no differences"

    def status_of(self, sku: str) -> str | None:
        """added / removed / changed for an item, None when it is the same on both sides."""
        return next((c.status for c in self.items if c.key == sku), None)


def _filled(entry: Mapping[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    filled = {**defaults, **entry}
    for name in TIMESTAMP_FIELDS:
        if name in filled:
            filled[name] = _comparable_timestamp(filled[name])
    return filled


def _comparable_timestamp(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return rules.format_timestamp(parsed) if parsed.tzinfo is not None else value


def _entry_changes(
    before: list[Mapping[str, Any]],
    after: list[Mapping[str, Any]],
    *,
    key: str,
    fields: tuple[str, ...],
    defaults: dict[str, Any],
) -> tuple[list[EntryChange], bool]:
    old = {e.get(key): _filled(e, defaults) for e in before}
    new = {e.get(key): _filled(e, defaults) for e in after}
    changes: list[EntryChange] = []
    for name, entry in new.items():
        if name not in old:
            changes.append(EntryChange(str(name), "added", entry))
            continue
        was = old[name]
        names = list(fields) + sorted((set(entry) | set(was)) - set(fields))
        differing = tuple(
            FieldChange(f, was.get(f), entry.get(f)) for f in names if was.get(f) != entry.get(f)
        )
        if differing:
            changes.append(EntryChange(str(name), "changed", entry, differing))
    changes.extend(
        EntryChange(str(name), "removed", entry) for name, entry in old.items() if name not in new
    )
    common_old = [k for k in old if k in new]
    common_new = [k for k in new if k in old]
    return changes, common_old != common_new


def diff_catalogs(before: Mapping[str, Any], after: Mapping[str, Any]) -> CatalogDiff:
    """What turns ``before`` into ``after``: entries matched by sku / currency code, fields
    compared after filling in the store's defaults (a field left out is not a change)."""
    currencies, _ = _entry_changes(
        list(before.get("currencies", [])),
        list(after.get("currencies", [])),
        key="code",
        fields=CURRENCY_FIELDS,
        defaults=CURRENCY_DEFAULTS,
    )
    items, reordered = _entry_changes(
        list(before.get("items", [])),
        list(after.get("items", [])),
        key="sku",
        fields=ITEM_FIELDS,
        defaults=ITEM_DEFAULTS,
    )
    return CatalogDiff(
        tuple(currencies), tuple(items), reordered, scales_of(before), scales_of(after)
    )


def scales_of(catalog: Mapping[str, Any]) -> dict[str, int]:
    """Each currency's scale by code: what turns its minor units into major ones."""
    currencies = catalog.get("currencies")
    return {
        c["code"]: c["scale"]
        for c in (currencies if isinstance(currencies, list) else [])
        if isinstance(c, Mapping) and isinstance(c.get("code"), str) and _is_int(c.get("scale"))
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_money(amount: Any, currency: Any, scales: Mapping[str, int] | None) -> str:
    """An amount as people read it, with its minor units beside when they differ:
    ``0.0150 USD (150)``, ``50 COINS``. The catalog file holds minor units, so a reviewer
    sees both. Exact (the SDK's Money, integers only). Without ``scales`` the amount stays
    in minor units as given; with them, a currency they lack says so."""
    if scales is None:
        return f"{amount} {currency}"
    scale = scales.get(currency) if isinstance(currency, str) else None
    if scale is None:
        return f"{amount} {currency} (minor units)"
    try:
        money = Money.from_minor(amount, currency, scale=scale)
    except (TypeError, ValueError):  # not an amount the store would take: show it as it is
        return f"{json.dumps(amount, default=str)} {currency}"
    return str(money) if scale == 0 else f"{money} ({money.minor})"


def format_value(field: str, value: Any, scales: Mapping[str, int] | None = None) -> str:
    """A field's value in a few words: ``50 COINS, 0.0150 USD (150)``, ``unlimited``,
    ``3 x potion``. ``scales`` (see `scales_of`) turns amounts into major units."""
    if field == "prices" and isinstance(value, list):
        return ", ".join(_money(p, scales) for p in value) or "(none)"
    if field == "contents" and isinstance(value, list):
        return ", ".join(_content(c, scales) for c in value) or "(nothing)"
    if value is None:
        return {
            "stock": "unlimited",
            "per_player_limit": "no limit",
            "max_balance": "no cap",
            "available_from": "always",
            "available_until": "never",
        }.get(field, "none")
    if field == "tags" and isinstance(value, list):
        return ", ".join(str(t) for t in value) if value else "(none)"
    if field in TIMESTAMP_FIELDS:
        return str(_short_timestamp(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def _money(entry: Any, scales: Mapping[str, int] | None) -> str:
    if isinstance(entry, Mapping) and "currency" in entry and "amount" in entry:
        return format_money(entry["amount"], entry["currency"], scales)
    return json.dumps(entry)


def _content(entry: Any, scales: Mapping[str, int] | None) -> str:
    if isinstance(entry, Mapping) and "sku" in entry:
        return f"{entry.get('quantity')} x {entry['sku']}"
    return _money(entry, scales)


def _field_text(section: str, key: str, field: str, value: Any, scales: Mapping[str, int]) -> str:
    """A field of a diffed entry; a currency's cap is an amount of that very currency."""
    if section == "currencies" and field == "max_balance" and value is not None:
        return format_money(value, key, scales)
    return format_value(field, value, scales)


def describe_entry(
    section: str, entry: Mapping[str, Any], scales: Mapping[str, int] | None = None
) -> str:
    """One line about a whole entry, for an added or removed one."""
    if section == "currencies":
        return f"{entry.get('name', '')}, scale {entry.get('scale')}"
    return (
        f"{entry.get('name', '')}, {entry.get('kind', '')}, "
        f"{format_value('prices', entry.get('prices'), scales)}"
    )


def format_diff(diff: CatalogDiff, *, before: str, after: str) -> list[str]:
    """The diff as text lines, per entry and field, for a terminal; amounts in major units,
    each side by its own catalog's scales (a published currency never changes its scale, so
    a side that lacks one borrows the other's)."""
    old_scales = {**diff.after_scales, **diff.before_scales}
    new_scales = {**diff.before_scales, **diff.after_scales}
    lines = [f"--- {before}", f"+++ {after}"]
    for section, changes in (("currencies", diff.currencies), ("items", diff.items)):
        if not changes and not (section == "items" and diff.items_reordered):
            continue
        lines.append(f"{section}:")
        for change in changes:
            if change.status == "added":
                described = describe_entry(section, change.entry, new_scales)
                lines.append(f"  + {change.key}: {described}")
            elif change.status == "removed":
                described = describe_entry(section, change.entry, old_scales)
                lines.append(f"  - {change.key}: {described}")
            else:
                lines.append(f"  ~ {change.key}")
                for field in change.fields:
                    was = _field_text(section, change.key, field.field, field.before, old_scales)
                    now = _field_text(section, change.key, field.field, field.after, new_scales)
                    lines.append(f"      {field.field}: {was} -> {now}")
        if section == "items" and diff.items_reordered:
            lines.append("  (the order of items changed)")
    lines.append(diff.summary())
    return lines
