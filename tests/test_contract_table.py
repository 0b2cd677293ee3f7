"""The contract table is the one home of every error code: the server's classes derive from it,
every code the SQL raises is in it with the right status and SQLSTATE, and the SDK's mirror
equals it row by row. No database needed."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import shopkeep.errors as sdk_errors
from shopkeep_server import contract, errors
from shopkeep_server.contract import ERRORS, SQLSTATE_FINAL, ErrorCategory

PACKAGE = Path(contract.__file__).resolve().parent


# ---------------------------------------------------------------------------------------------
# The table itself
# ---------------------------------------------------------------------------------------------


def test_codes_are_unique_and_named_like_codes() -> None:
    codes = [entry.code for entry in ERRORS]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code


def test_final_means_a_stored_409_raised_by_sk_fail() -> None:
    # The SQL stores exactly SQLSTATE_FINAL with the key, as a 409 (sk_idempotent), and
    # run_once stores exactly the FINAL codes: the three must be the same set.
    final = {e.code for e in ERRORS if e.category is ErrorCategory.FINAL}
    assert final == {e.code for e in ERRORS if e.sqlstate == SQLSTATE_FINAL}
    assert {e.status for e in ERRORS if e.category is ErrorCategory.FINAL} == {409}
    assert final == errors.STORED_REJECTIONS


def test_categories_follow_the_statuses_api_md_names() -> None:
    # API.md: not stored are 400, 401, 403, 413, 415, 422, 429 and 5xx; 409 is stored except
    # "in use". The table states it per code; this is the same rule seen from the statuses.
    for entry in ERRORS:
        if entry.status >= 500 or entry.status == 429:
            assert entry.category is ErrorCategory.TRANSIENT, entry
        elif entry.status == 409:
            expected = (
                ErrorCategory.TRANSIENT
                if entry.code == "idempotency_key_in_use"
                else ErrorCategory.FINAL
            )
            assert entry.category is expected, entry
        else:
            assert entry.category is ErrorCategory.NOT_STORED, entry


def test_the_contract_module_needs_only_the_standard_library() -> None:
    tree = ast.parse(Path(contract.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "contract.py imports nothing of the project"
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# ---------------------------------------------------------------------------------------------
# The server's errors derive from it
# ---------------------------------------------------------------------------------------------


def test_every_code_has_its_class_status_category_and_message() -> None:
    assert list(errors.ERROR_TABLE) == [e.code for e in ERRORS]
    for entry in ERRORS:
        status, cls = errors.ERROR_TABLE[entry.code]
        error = cls()
        assert (status, error.status, error.code) == (entry.status, entry.status, entry.code)
        assert error.category is entry.category
        assert error.message == entry.message


def test_the_envelope_has_the_api_shape() -> None:
    body = errors.error_body("sold_out", "gone", {"sku": "egg"}, "req-1")
    assert body == {
        "error": {
            "code": "sold_out",
            "message": "gone",
            "details": {"sku": "egg"},
            "request_id": "req-1",
        }
    }


# ---------------------------------------------------------------------------------------------
# Every code the SQL raises is in the table
# ---------------------------------------------------------------------------------------------

_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:\w+\.)?(\w+)\s*\((.*?)\)\s*(?:RETURNS|LANGUAGE)"
    r".*?\$(\w*)\$(.*?)\$\3\$",
    re.IGNORECASE | re.DOTALL,
)
# What precedes a function's name where it is defined, dropped, granted or commented on.
_NOT_A_CALL = re.compile(r"FUNCTION\s+(?:IF\s+EXISTS\s+)?(?:\w+\.)?$", re.IGNORECASE)
_RAISE = re.compile(r"\bRAISE\s+EXCEPTION\b(.*?);", re.IGNORECASE | re.DOTALL)
_ERRCODE = re.compile(r"\bERRCODE\s*=\s*'(\w+)'", re.IGNORECASE)
_MESSAGE = re.compile(r"\bMESSAGE\s*=\s*(?:'([^']*)'|(\w+))", re.IGNORECASE)
_HANDLER = re.compile(r"\bWHEN\s+SQLSTATE\s+'(\w+)'", re.IGNORECASE)


def _sql_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.sql"))
    assert files, f"no SQL files under {PACKAGE}"
    return files


def _without_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def _raised_codes() -> list[tuple[str, str, str]]:
    """(file, SQLSTATE, code) for every code the SQL raises: the literal MESSAGE of a RAISE, and
    the literal first argument of every call to a function that raises its parameter (sk_fail)."""
    texts = {
        path.relative_to(PACKAGE).as_posix(): _without_comments(path.read_text())
        for path in _sql_files()
    }
    raised: list[tuple[str, str, str]] = []
    raisers: dict[str, str] = {}  # function name -> the SQLSTATE it raises its first argument with
    for name, text in texts.items():
        for function in _FUNCTION.finditer(text):
            params = [p.split()[0] for p in function.group(2).split(",") if p.strip()]
            for statement in _RAISE.finditer(function.group(4)):
                message, errcode = (
                    _MESSAGE.search(statement.group(1)),
                    _ERRCODE.search(statement.group(1)),
                )
                if message is None or message.group(2) is None:
                    continue
                assert errcode is not None, f"{name}: {function.group(1)} raises without ERRCODE"
                assert params and message.group(2) == params[0], (
                    f"{name}: {function.group(1)} raises its parameter {message.group(2)} as the"
                    " code; it must be the first parameter, so its callers can be checked"
                )
                raisers[function.group(1)] = errcode.group(1)
        for statement in _RAISE.finditer(text):
            message, errcode = (
                _MESSAGE.search(statement.group(1)),
                _ERRCODE.search(statement.group(1)),
            )
            if message is None or message.group(1) is None:
                continue  # a RAISE without an API code: answered as internal_error
            assert errcode is not None, f"{name}: RAISE of {message.group(1)!r} without ERRCODE"
            raised.append((name, errcode.group(1), message.group(1)))
    assert "sk_fail" in raisers, "sk_fail, which raises the business rejections, was not found"
    for name, text in texts.items():
        for function, sqlstate in raisers.items():
            for call in re.finditer(rf"\b{function}\s*\(\s*([^,)]*)", text):
                argument = call.group(1).strip()
                if _NOT_A_CALL.search(text[: call.start()]):
                    continue  # the definition itself
                literal = re.fullmatch(r"'([^']*)'", argument)
                assert literal, f"{name}: {function}({argument}, ...): the code must be a literal"
                raised.append((name, sqlstate, literal.group(1)))
    return raised


def test_every_code_the_sql_raises_is_in_the_table_with_its_sqlstate() -> None:
    raised = _raised_codes()
    assert {code for _, _, code in raised} >= {
        "insufficient_funds",
        "not_found",
        "validation_failed",
    }
    problems: list[str] = []
    for name, sqlstate, code in raised:
        entry = contract.BY_CODE.get(code)
        if entry is None:
            problems.append(f"{name} raises {code!r}, which is not in contract.ERRORS")
        elif entry.sqlstate != sqlstate:
            problems.append(
                f"{name} raises {code!r} with SQLSTATE {sqlstate}; the table says {entry.sqlstate}"
            )
    # The table's FINAL rows are 409 and SQLSTATE_FINAL (test above), so a code that passes
    # here is stored by the SQL with the status the table gives it.
    assert not problems, "\n".join(problems)


def test_every_sqlstate_in_the_table_is_raised_by_the_sql() -> None:
    raised = {(sqlstate, code) for _, sqlstate, code in _raised_codes()}
    for entry in ERRORS:
        if entry.sqlstate is not None and entry.sqlstate != SQLSTATE_FINAL:
            assert (entry.sqlstate, entry.code) in raised, f"no SQL raises {entry.code}"


def test_the_sql_stores_only_the_final_sqlstate() -> None:
    handled = {
        state
        for path in _sql_files()
        for state in _HANDLER.findall(_without_comments(path.read_text()))
    }
    assert handled == {SQLSTATE_FINAL}


# ---------------------------------------------------------------------------------------------
# The SDK's mirror
# ---------------------------------------------------------------------------------------------


def test_the_sdk_categories_are_the_servers() -> None:
    assert [(c.name, c.value) for c in sdk_errors.ErrorCategory] == [
        (c.name, c.value) for c in ErrorCategory
    ]


def test_the_sdk_table_equals_the_contract_table_code_by_code() -> None:
    mirror = [
        (code, entry.status, entry.category.value) for code, entry in sdk_errors.ERROR_TABLE.items()
    ]
    original = [(e.code, e.status, e.category.value) for e in ERRORS]
    assert mirror == original


@pytest.mark.parametrize("entry", ERRORS, ids=lambda e: e.code)
def test_the_sdk_reads_each_code_as_the_server_means_it(entry: contract.ErrorCode) -> None:
    body = errors.error_body(entry.code, entry.message, {}, "req-1")
    error = sdk_errors.error_from_body(entry.status, body)
    assert (error.code, error.status, error.message) == (entry.code, entry.status, entry.message)
    assert error.category is not None and error.category.value == entry.category.value
