"""The distributions: what a game installs (`shopkeep`: the SDK and httpx, nothing of the
server), what a studio member adds for the command line (`shopkeep[cli]`: click and PyYAML),
what a studio runs (`shopkeep-server`) and the developer's workspace (everything else, never
in a game's environment)."""

from __future__ import annotations

import email
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from email.message import Message
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SDK_DIR = ROOT / "sdk"
SERVER_DIR = ROOT / "server"
PYPROJECTS = [ROOT / "pyproject.toml", SDK_DIR / "pyproject.toml", SERVER_DIR / "pyproject.toml"]
# What a wheel's metadata folder holds besides the package: never a package of ours.
PIP = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
DIST_INFO = re.compile(r"^[A-Za-z0-9_.]+-[^/]+\.dist-info/")


def _build_wheel(project: Path, out: Path) -> Path:
    """Builds ``project``'s wheel from a copy of it, so the checkout gets no build folders and
    the distribution is shown to need nothing outside its own folder (LICENSE, a link to the
    repository's, is copied as the file it points at)."""
    source = out / "src" / project.name
    shutil.copytree(
        project,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.pyc"),
    )
    wheels = out / "wheels"
    done = subprocess.run(
        [*PIP, "wheel", "--no-deps", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("*.whl")
    return wheel


def _wheel_metadata(wheel: zipfile.ZipFile) -> Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def _entry_points(wheel: zipfile.ZipFile) -> str:
    names = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    return wheel.read(names[0]).decode() if names else ""


def _requirements(message: Message) -> list[Requirement]:
    return [Requirement(text) for text in message.get_all("Requires-Dist") or []]


def _package_files(package_dir: Path) -> set[str]:
    """Every file of a package's source tree as the wheel names it (no bytecode)."""
    return {
        path.relative_to(package_dir.parent).as_posix()
        for path in package_dir.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(SDK_DIR, tmp_path_factory.mktemp("sdk-wheel"))


@pytest.fixture(scope="module")
def server_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(SERVER_DIR, tmp_path_factory.mktemp("server-wheel"))


def test_sdk_wheel_holds_the_sdk_alone(sdk_wheel: Path) -> None:
    with zipfile.ZipFile(sdk_wheel) as wheel:
        names = wheel.namelist()
        package = [n for n in names if not DIST_INFO.match(n)]
        assert sorted(package) == sorted(_package_files(SDK_DIR / "shopkeep"))
        assert "shopkeep/py.typed" in package
        assert all(n.startswith("shopkeep/") for n in package), package
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
        # The studio command line is in the package (its modules import click and PyYAML only
        # when run); the command is safe without the extra (shopkeep/cli.py).
        for module in ("studio.py", "catalog_cli.py", "catalog_file.py", "catalog_diff.py"):
            assert f"shopkeep/{module}" in package
        message = _wheel_metadata(wheel)
        entry_points = _entry_points(wheel)
    assert entry_points.split() == ["[console_scripts]", "shopkeep", "=", "shopkeep.cli:main"]
    assert message["Name"] == "shopkeep"
    assert message["License-Expression"] == "Apache-2.0"
    requirements = _requirements(message)
    always = [r for r in requirements if r.marker is None]
    assert [r.name for r in always] == ["httpx"] and always[0].extras == set()
    assert message.get_all("Provides-Extra") == ["cli"]
    cli_extra = {
        canonicalize_name(r.name)
        for r in requirements
        if r.marker is not None and r.marker.evaluate({"extra": "cli"})
    }
    assert cli_extra == {"click", "pyyaml"}


def test_server_wheel_holds_the_server_with_its_data_files(server_wheel: Path) -> None:
    package_dir = SERVER_DIR / "shopkeep_server"
    with zipfile.ZipFile(server_wheel) as wheel:
        names = wheel.namelist()
        package = {n for n in names if not DIST_INFO.match(n)}
        entry_points = _entry_points(wheel)
        message = _wheel_metadata(wheel)
    # Every file of the package is in the wheel: the modules, the migrations, the SQL
    # function files, the studio page's templates and static files.
    assert package == _package_files(package_dir)
    for data in ("migrations/*.sql", "sql/*.sql", "web/templates/**/*", "web/static/**/*"):
        for path in package_dir.glob(data):
            if path.is_file():
                assert path.relative_to(SERVER_DIR).as_posix() in package, path
    assert any(n.startswith("shopkeep_server/migrations/0001") for n in package)
    assert not any(n.startswith(("shopkeep/", "sample_game/", "loadtests/")) for n in package)
    assert "shopkeep-server = shopkeep_server.cli:main" in entry_points
    # The studio command line is the SDK's (shopkeep[cli]), not the server's.
    assert "shopkeep =" not in entry_points
    assert not {"shopkeep_server/catalog_cli.py", "shopkeep_server/catalog_file.py"} & package
    assert message["Name"] == "shopkeep-server"
    required = {canonicalize_name(r.name) for r in _requirements(message)}
    assert {"flask", "psycopg", "psycopg-pool", "click", "gunicorn"} <= required
    assert not required & {"pygame-ce", "locust", "psutil", "pytest", "pyyaml"}
    # The server depends on the SDK exactly when its code imports it.
    imports_sdk = any(
        re.search(r"^\s*(from|import) shopkeep(\.|\s|$)", path.read_text(), re.MULTILINE)
        for path in package_dir.rglob("*.py")
    )
    assert ("shopkeep" in required) == imports_sdk


def _pyproject_requirements(path: Path) -> Iterable[Requirement]:
    project = tomllib.loads(path.read_text())["project"]
    yield from (Requirement(text) for text in project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        yield from (Requirement(text) for text in extra)


def test_a_dependency_shared_by_two_distributions_has_one_range() -> None:
    """Each distribution states what it imports; where two need the same package (httpx: the
    SDK, and click: the SDK's cli extra and the server's command), the ranges must be the
    same."""
    ranges: dict[str, set[str]] = {}
    for path in PYPROJECTS:
        for requirement in _pyproject_requirements(path):
            if requirement.specifier:
                ranges.setdefault(canonicalize_name(requirement.name), set()).add(
                    str(requirement.specifier)
                )
    assert {name: specs for name, specs in ranges.items() if len(specs) > 1} == {}


def test_workspace_installs_the_game_and_load_tests_only() -> None:
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = workspace["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["sample_game*", "loadtests*"]
    assert workspace["project"]["scripts"] == {"shopkeep-demo": "sample_game.__main__:main"}
    # The SDK and the server are named without a range: theirs are in their own files.
    names = {Requirement(r).name: Requirement(r) for r in workspace["project"]["dependencies"]}
    assert not names["shopkeep"].specifier and not names["shopkeep-server"].specifier


def test_sdk_depends_on_httpx_only() -> None:
    requirements = [Requirement(r) for r in metadata.requires("shopkeep") or []]
    assert [r.name for r in requirements if r.marker is None] == ["httpx"]
    assert metadata.metadata("shopkeep").get_all("Provides-Extra") == ["cli"]
    assert "dev" in (metadata.metadata("shopkeep-workspace").get_all("Provides-Extra") or [])


def test_importing_the_sdk_loads_no_server_dependency() -> None:
    probe = (
        "import sys, shopkeep; "
        "print(sorted(m for m in ('flask', 'psycopg', 'marshmallow', 'jwt', 'gunicorn')"
        " if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


OUR_DISTRIBUTIONS = ("shopkeep", "shopkeep-server", "shopkeep-workspace")


@pytest.mark.parametrize(
    "command",
    sorted(
        entry.name
        for name in OUR_DISTRIBUTIONS
        for entry in metadata.distribution(name).entry_points
        if entry.group == "console_scripts"
    ),
)
def test_every_installed_command_answers_help(command: str) -> None:
    executable = Path(sys.executable).parent / command
    done = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower(), done.stdout
    assert "Traceback" not in done.stderr


# Run by the fresh venv's Python: every installed distribution and what it requires.
_LIST_DISTRIBUTIONS = """
import json
from importlib import metadata
print(json.dumps({d.metadata["Name"]: d.requires or [] for d in metadata.distributions()}))
"""


def _closure(start: str, requires: dict[str, list[str]]) -> set[str]:
    """``start`` and everything it needs, evaluated for this Python (extras not taken)."""
    by_name = {canonicalize_name(name): reqs for name, reqs in requires.items()}
    seen: set[str] = set()
    todo = [canonicalize_name(start)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in by_name.get(name, []):
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


@pytest.mark.slow
def test_the_sdk_wheel_installs_alone_in_a_fresh_venv(sdk_wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "game-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), *PIP[1:], "install", str(sdk_wheel)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr

    # Run outside the checkout: its folders (sample_game/, *.egg-info) must not be found
    # through the current directory.
    listed = subprocess.run(
        [str(python), "-c", _LIST_DISTRIBUTIONS],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    requires: dict[str, list[str]] = json.loads(listed.stdout)
    installed = {canonicalize_name(name) for name in requires} - {"pip", "setuptools"}
    assert installed == _closure("shopkeep", requires)
    assert installed == {"shopkeep"} | _closure("httpx", requires)
    assert not installed & {"flask", "psycopg", "click", "shopkeep-server", "pygame-ce"}

    works = subprocess.run(
        [str(python), "-c", "import shopkeep; print(shopkeep.__version__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert works.returncode == 0, works.stderr
    assert works.stdout.strip() == metadata.version("shopkeep")
    for module in ("shopkeep_server", "sample_game", "loadtests"):
        missing = subprocess.run(
            [str(python), "-c", f"import {module}"], capture_output=True, text=True, cwd=tmp_path
        )
        assert missing.returncode == 1
        assert f"No module named '{module}'" in missing.stderr
    # The SDK's one command says what it needs instead of crashing; the server's is not there.
    assert not (venv / "bin" / "shopkeep-server").exists()
    for args in (["--help"], ["catalog", "pull"]):
        bare = subprocess.run(
            [str(venv / "bin" / "shopkeep"), *args], capture_output=True, text=True, cwd=tmp_path
        )
        assert bare.returncode == 2
        assert "Traceback" not in bare.stderr
        assert "pip install 'shopkeep[cli]'" in bare.stderr, bare.stderr


@pytest.mark.slow
def test_the_cli_extra_installs_the_command_line_without_the_server(
    sdk_wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "studio-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), *PIP[1:], "install", f"{sdk_wheel}[cli]"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [str(python), "-c", _LIST_DISTRIBUTIONS],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    requires: dict[str, list[str]] = json.loads(listed.stdout)
    installed = {canonicalize_name(name) for name in requires} - {"pip", "setuptools"}
    expected = {"shopkeep"} | _closure("httpx", requires)
    expected |= _closure("click", requires) | _closure("pyyaml", requires)
    assert installed == expected
    assert not installed & {"flask", "psycopg", "marshmallow", "shopkeep-server"}
    helped = subprocess.run(
        [str(venv / "bin" / "shopkeep"), "catalog", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert helped.returncode == 0, helped.stderr
    assert "pull" in helped.stdout and "publish" in helped.stdout
