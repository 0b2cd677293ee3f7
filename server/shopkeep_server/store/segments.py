"""Segment rules: the small expression language a catalog's segments are written in.

A rule is text a studio writes in its catalog, such as::

    first_seen within 7d
    last_purchase older_than 30d and spend.GOLD >= 1000
    country = "BR" or (attr.vip = true and not attr.level < 10)

It is parsed here, by a hand-written recursive-descent parser over a fixed grammar, into a
JSON tree that the SQL function ``sk_rule_matches`` (sql/66_offers.sql) evaluates in the
transaction that prices a catalog view or a purchase. Nothing in a rule is ever executed as
code: the tree holds only the operators below, attribute paths and literals.

Grammar (keywords are lower case; whitespace separates tokens)::

    rule       := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" or ")" | condition
    condition  := timestamp ("within" | "older_than") duration
                | value_name ("=" | "!=" | "<" | "<=" | ">" | ">=") literal
    duration   := integer ("d" | "h" | "m" | "s")              e.g. 7d, 12h
    literal    := "string" | integer | true | false
    timestamp  := first_seen | last_purchase
    value_name := country | spend.<CURRENCY> | attr.<key>

What the names mean (a player's facts, ``sk_player_facts``): ``first_seen`` when the store first
saw the player, ``last_purchase`` its latest completed purchase, ``country`` its ISO country
(token claim or attributes), ``spend.GOLD`` its lifetime spend in GOLD's minor units, and
``attr.level`` a studio-defined attribute. A condition on a fact the player does not have is
false (``not`` makes it true). Errors carry the 1-based column they were found at.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from .rules import ATTRIBUTE_KEY_PATTERN, CURRENCY_PATTERN, MAX_AMOUNT, matches

MAX_RULE_LENGTH = 1000
# Deep nesting would make both parsers (this one and the SQL evaluator) recurse: bounded.
MAX_DEPTH = 16

TIMESTAMP_FACTS = ("first_seen", "last_purchase")
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
DURATION_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\])*")
      | (?P<duration>\d+[dhms])\b
      | (?P<integer>-?\d+)
      | (?P<operator><=|>=|!=|=|<|>|\(|\))
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)?)
    )""",
    re.VERBOSE,
)


class RuleError(ValueError):
    """A rule that does not parse: ``column`` (1-based) is where the problem starts."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column


@dataclasses.dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            column = position + len(text[position:]) - len(text[position:].lstrip()) + 1
            raise RuleError(f"unexpected {text[column - 1]!r}", column)
        kind = match.lastgroup
        found.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    found.append(_Token("end", "", len(text) + 1))
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text == word

    def rule(self) -> dict[str, Any]:
        tree = self.either()
        token = self.peek()
        if token.kind != "end":
            raise RuleError(f"expected and, or or the end, found {token.text!r}", token.column)
        return tree

    def either(self) -> dict[str, Any]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleError(f"nested more than {MAX_DEPTH} levels", self.peek().column)
        parts = [self.both()]
        while self.is_word("or"):
            self.take()
            parts.append(self.both())
        self.depth -= 1
        return parts[0] if len(parts) == 1 else {"op": "or", "args": parts}

    def both(self) -> dict[str, Any]:
        parts = [self.unary()]
        while self.is_word("and"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else {"op": "and", "args": parts}

    def unary(self) -> dict[str, Any]:
        token = self.peek()
        if self.is_word("not"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise RuleError(f"nested more than {MAX_DEPTH} levels", token.column)
            inner = self.unary()
            self.depth -= 1
            return {"op": "not", "arg": inner}
        if token.kind == "operator" and token.text == "(":
            self.take()
            inner = self.either()
            closing = self.take()
            if closing.text != ")" or closing.kind != "operator":
                raise RuleError("expected )", closing.column)
            return inner
        return self.condition()

    def condition(self) -> dict[str, Any]:
        name = self.take()
        if name.kind != "word" or name.text in ("and", "or", "not", "true", "false"):
            shown = name.text or "the end"
            raise RuleError(f"expected an attribute name, found {shown!r}", name.column)
        path = self.path(name)
        operator = self.take()
        if path[0] in TIMESTAMP_FACTS:
            if operator.kind != "word" or operator.text not in ("within", "older_than"):
                raise RuleError(f"{name.text} takes within or older_than", operator.column)
            duration = self.take()
            if duration.kind != "duration":
                raise RuleError("expected a duration such as 7d, 12h, 30m", duration.column)
            seconds = int(duration.text[:-1]) * DURATION_SECONDS[duration.text[-1]]
            if seconds > MAX_AMOUNT:
                raise RuleError("duration too long", duration.column)
            return {"op": operator.text, "path": path, "seconds": seconds}
        if operator.kind != "operator" or operator.text not in COMPARISONS:
            shown = operator.text or "the end"
            raise RuleError(
                f"expected one of {' '.join(COMPARISONS)}, found {shown!r}", operator.column
            )
        value = self.literal()
        if path[0] == "country":
            if operator.text not in ("=", "!=") or not isinstance(value, str):
                raise RuleError('country compares with = or != and a "string"', operator.column)
        elif path[0] == "spend" and (isinstance(value, bool) or not isinstance(value, int)):
            raise RuleError("spend compares with an integer amount", operator.column)
        return {"op": operator.text, "path": path, "value": value}

    def path(self, name: _Token) -> list[str]:
        head, _, tail = name.text.partition(".")
        if head in (*TIMESTAMP_FACTS, "country") and not tail:
            return [head]
        if head == "spend" and matches(CURRENCY_PATTERN, tail):
            return [head, tail]
        if head == "attr" and matches(ATTRIBUTE_KEY_PATTERN, tail):
            return [head, tail]
        raise RuleError(
            f"unknown attribute {name.text!r} (first_seen, last_purchase, country,"
            " spend.CURRENCY, attr.key)",
            name.column,
        )

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "string":
            body = token.text[1:-1]
            return body.replace('\\"', '"').replace("\\\\", "\\")
        if token.kind == "integer":
            value = int(token.text)
            if abs(value) > MAX_AMOUNT:
                raise RuleError("number too large", token.column)
            return value
        if token.kind == "word" and token.text in ("true", "false"):
            return token.text == "true"
        shown = token.text or "the end"
        raise RuleError(
            f'expected a "string", an integer, true or false, found {shown!r}', token.column
        )


def parse(text: str) -> dict[str, Any]:
    """The rule's tree (JSON-ready), or RuleError with the column of the problem."""
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"a rule is at most {MAX_RULE_LENGTH} characters", MAX_RULE_LENGTH + 1)
    return _Parser(text).rule()
