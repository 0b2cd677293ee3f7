"""The server's layers, read from the source with ``ast``: who may import whom.

- web/ (the studio page) imports nothing from api/ and nothing from the studio command line or
  its file module (both are the SDK's, shopkeep.catalog_cli and shopkeep.catalog_file): what
  both edges need lives below them (runtime/, store/) or is the SDK's (shopkeep.catalog_diff).
- runtime/ (services, unit of work, idempotent request, rate limiter) is below both edges.
- store/ (the domain) speaks no HTTP: nothing from flask, werkzeug or the layers above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shopkeep_server

PACKAGE_DIR = Path(shopkeep_server.__file__).resolve().parent
PACKAGE = "shopkeep_server"
# The studio command line and its file module: the SDK's, never imported by the server.
CLI_MODULES = ("shopkeep.catalog_cli", "shopkeep.catalog_file", "shopkeep.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module ``module`` imports, relative imports resolved (``from ..api import x``
    in shopkeep_server.web.page is shopkeep_server.api and shopkeep_server.api.x)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from .. import catalog_file` imports a module by the name of the alias.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def modules_under(folder: str) -> list[tuple[str, set[str]]]:
    paths = sorted((PACKAGE_DIR / folder).rglob("*.py"))
    assert paths, folder
    return [
        (
            module_name(path),
            imported_modules(
                path.read_text(encoding="utf-8"),
                module_name(path),
                is_package=path.name == "__init__.py",
            ),
        )
        for path in paths
    ]


def within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from ..api import common", "shopkeep_server.web.page", "shopkeep_server.api.common"),
        ("from ..api.common import x", "shopkeep_server.web.page", "shopkeep_server.api.common"),
        ("from .. import forms", "shopkeep_server.web.page", "shopkeep_server.forms"),
        ("import shopkeep.catalog_cli", "shopkeep_server.web.page", CLI_MODULES[0]),
        ("from shopkeep import catalog_file", "shopkeep_server.web.page", CLI_MODULES[1]),
        ("from ...api import common", "shopkeep_server.store.sub.m", "shopkeep_server.api"),
        ("from flask import g", "shopkeep_server.store.players", "flask"),
    ],
)
def test_the_import_reader_resolves_every_form(source: str, module: str, expected: str) -> None:
    assert any(within(name, expected) for name in imported_modules(source, module))


def test_a_package_init_resolves_relative_to_itself() -> None:
    found = imported_modules("from .routes import blp", "shopkeep_server.web", is_package=True)
    assert "shopkeep_server.web.routes" in found


def test_the_studio_page_imports_nothing_from_the_api_or_the_cli() -> None:
    offending = {
        module: sorted(n for n in names if within(n, f"{PACKAGE}.api", *CLI_MODULES))
        for module, names in modules_under("web")
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_the_shared_layer_is_below_both_edges() -> None:
    above = (f"{PACKAGE}.api", f"{PACKAGE}.web", f"{PACKAGE}.app", *CLI_MODULES)
    offending = {
        module: sorted(n for n in names if within(n, *above))
        for module, names in modules_under("runtime")
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_the_store_speaks_no_http() -> None:
    above = (
        "flask",
        "flask_smorest",
        "werkzeug",
        f"{PACKAGE}.api",
        f"{PACKAGE}.web",
        f"{PACKAGE}.runtime",
        f"{PACKAGE}.app",
        *CLI_MODULES,
    )
    offending = {
        module: sorted(n for n in names if within(n, *above))
        for module, names in modules_under("store")
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_the_server_imports_nothing_of_the_studio_command_line() -> None:
    """The command line and the catalog file are the SDK's client side (its ``cli`` extra):
    the server, installed without that extra, imports neither."""
    users = {
        module_name(path)
        for path in PACKAGE_DIR.rglob("*.py")
        if any(
            within(n, *CLI_MODULES)
            for n in imported_modules(
                path.read_text(encoding="utf-8"),
                module_name(path),
                is_package=path.name == "__init__.py",
            )
        )
    }
    assert users == set()
    assert not (PACKAGE_DIR / "catalog_cli.py").exists()
    assert not (PACKAGE_DIR / "catalog_file.py").exists()
