"""What a game installs: `pip install shopkeep` pulls httpx and nothing of the server."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata


def test_sdk_depends_on_httpx_only() -> None:
    requirements = metadata.requires("shopkeep") or []
    runtime = [r for r in requirements if "extra ==" not in r]
    assert [r.split(">")[0].split("<")[0].strip() for r in runtime] == ["httpx"]
    extras = set(metadata.metadata("shopkeep").get_all("Provides-Extra") or [])
    assert {"server", "game", "loadtest", "dev"} <= extras


def test_importing_the_sdk_loads_no_server_dependency() -> None:
    probe = (
        "import sys, shopkeep; "
        "print(sorted(m for m in ('flask', 'psycopg', 'marshmallow', 'jwt', 'gunicorn')"
        " if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
