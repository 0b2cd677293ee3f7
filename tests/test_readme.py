"""The README's commands work when pasted: every fenced ``sh`` block of README.md is run by a
test here, or is checked to be the command CI runs, or says in the README why it is only
illustrative.

Each block carries a marker on the line before its fence, so a reader (and this test) knows
which it is::

    <!-- readme-check: run by tests/test_readme.py in a fresh venv -->
    <!-- readme-check: run by .ci/run (tests/test_readme.py checks that it is the same command) -->
    <!-- readme-check: illustrative (why) -->

A new block without a marker, or a marked block this file does not know, fails the first test.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import ROOT, free_port

README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- readme-check: (?P<kind>.+?) -->$")
RUN_HERE = "run by tests/test_readme.py in a fresh venv"
RUN_BY_CI = "run by .ci/run (tests/test_readme.py checks that it is the same command)"

# The blocks this file runs or checks, by their exact text.
INSTALL_AND_SERVE = (
    "python3 -m venv .venv && .venv/bin/pip install -e ./sdk -e ./server"
    " && .venv/bin/shopkeep-server serve --demo"
)
DEVELOPER_INSTALL = ".venv/bin/pip install -e ./sdk -e ./server -e '.[dev]'"
KNOWN = {INSTALL_AND_SERVE: RUN_HERE, DEVELOPER_INSTALL: RUN_BY_CI}


@dataclasses.dataclass(frozen=True)
class Block:
    line: int
    marker: str | None
    text: str


def sh_blocks(text: str) -> list[Block]:
    """Every fenced ``sh`` block with the marker on the line before its fence (if any)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```sh":
            start = index
            end = lines.index("```", start + 1)
            before = lines[start - 1] if start > 0 else ""
            found = MARKER.match(before.strip())
            body = "\n".join(lines[start + 1 : end]).strip()
            blocks.append(Block(start + 1, found.group("kind") if found else None, body))
            index = end
        index += 1
    return blocks


def test_the_block_reader_sees_markers_and_bodies() -> None:
    text = "intro\n```sh\nrun me\n```\n<!-- readme-check: illustrative (x) -->\n```sh\na\nb\n```\n"
    assert sh_blocks(text) == [
        Block(2, None, "run me"),
        Block(6, "illustrative (x)", "a\nb"),
    ]


def test_every_sh_block_of_the_readme_is_run_checked_or_marked_illustrative() -> None:
    blocks = sh_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no sh block"
    unmarked = [f"README.md:{b.line}: {b.text}" for b in blocks if b.marker is None]
    assert unmarked == [], "mark each block (see tests/test_readme.py)"
    for block in blocks:
        if block.marker is not None and block.marker.startswith("illustrative"):
            assert block.marker != "illustrative", "say why a block is illustrative"
            assert block.text not in KNOWN
            continue
        assert KNOWN.get(block.text) == block.marker, f"README.md:{block.line}: {block.text}"
    # Every block this file runs is still in the README, with its marker.
    assert {b.text for b in blocks if b.marker in (RUN_HERE, RUN_BY_CI)} == set(KNOWN)


def test_the_developer_install_is_the_command_ci_runs() -> None:
    """.ci/run runs the README's install command (with pip's quiet flags, through the venv's
    python), so every CI run proves it on a fresh machine."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    installs = [line for line in ci.splitlines() if " pip install " in line]
    assert len(installs) == 1, installs
    ran = shlex.split(installs[0])
    assert ran[:4] == [".venv/bin/python", "-m", "pip", "install"]
    arguments = [a for a in ran[4:] if a not in ("--quiet", "--disable-pip-version-check")]
    readme = shlex.split(DEVELOPER_INSTALL)
    assert readme[:2] == [".venv/bin/pip", "install"]
    assert arguments == readme[2:]


@pytest.mark.slow
def test_the_first_command_installs_and_serves_the_demo_on_a_fresh_venv(tmp_path: Path) -> None:
    """The README's first block, pasted in a folder holding a copy of sdk/ and server/: it
    installs into a new venv and serves the demo store, whose printed curl line buys a potion.
    Only ``--port`` is added (a test must not take port 8000 from anyone) and the data
    directory is the test's own."""
    checkout = tmp_path / "checkout"
    for folder in ("sdk", "server"):
        shutil.copytree(
            ROOT / folder,
            checkout / folder,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.pyc"),
        )
    port = free_port()
    env = {
        **os.environ,
        # `python3` is this interpreter's (any Python 3.11+ does); nothing of the dev venv leaks.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SHOPKEEP_DATA_DIR": str(tmp_path / "data"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "SHOPKEEP_DATABASE_URL"):
        env.pop(name, None)
    output_path = tmp_path / "output.txt"
    with output_path.open("w") as output:
        process = subprocess.Popen(
            ["bash", "-c", f"{INSTALL_AND_SERVE} --port {port}"],
            cwd=checkout,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        printed = _wait_for_serving(process, output_path, port)
        assert "Demo game 'demo' created." in printed
        curl = next(line.strip() for line in printed.splitlines() if "curl " in line)
        assert f"http://127.0.0.1:{port}/v1/purchases" in curl
        if shutil.which("curl") is not None:
            bought = subprocess.run(
                ["bash", "-c", curl], capture_output=True, text=True, timeout=60, env=env
            )
            assert bought.returncode == 0, bought.stderr
            assert '"sku":"potion"' in bought.stdout.replace(" ", ""), bought.stdout
    finally:
        # Ctrl-C, as the README says; the whole group, so the embedded PostgreSQL stops too.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_for_serving(process: subprocess.Popen[bytes], output_path: Path, port: int) -> str:
    """The output once the store answers /healthz (the install takes a while)."""
    deadline = time.monotonic() + 540
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the README's command ended ({process.returncode}):\n{_read(output_path)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return _read(output_path)
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"the store never answered:\n{_read(output_path)}")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
