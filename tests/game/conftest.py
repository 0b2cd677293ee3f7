"""Fixtures of the sample game's tests: a headless pygame, the game wired to a live store, the
studio backend in-process, and a TCP proxy that can cut the network (their types are in
tests/support/game.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Before pygame opens a display: no window, no sound device.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame
import pytest

from sample_game.app import App, GameOptions
from sample_game.backend import BackendClient, StudioBackend
from sample_game.headless import Driver
from sample_game.launch import make_session
from support.game import ROUND_SECONDS, FaultProxy, GameRun, StoreTools


@pytest.fixture(scope="session", autouse=True)
def headless_pygame() -> Iterator[None]:
    """pygame's display (the dummy driver) and fonts, for the whole session."""
    pygame.display.init()
    pygame.font.init()
    yield
    pygame.quit()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where the game's screenshots go: a temporary folder, or SHOPKEEP_SCREENSHOTS (set it to
    docs/screenshots to refresh the README's pictures) so a test run never edits the repo."""
    chosen = os.environ.get("SHOPKEEP_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path


@pytest.fixture
def start_game(tmp_path: Path) -> Iterator[Callable[..., GameRun]]:
    """``start_game(store_url, player_token, backend_url=None, seed=1)``: a headless game."""
    runs: list[GameRun] = []

    def start(
        store_url: str,
        player_token: str,
        *,
        backend_url: str | None = None,
        seed: int = 1,
        data_dir: Path | None = None,
    ) -> GameRun:
        # Idempotent; a test that ran the CLI's main() may have quit pygame.
        pygame.display.init()
        pygame.font.init()
        backend = BackendClient(backend_url, player_token) if backend_url else None
        session = make_session(
            store_url, player_token, backend=backend, data_dir=data_dir or tmp_path / "data"
        )
        options = GameOptions(round_seconds=ROUND_SECONDS, seed=seed, autopilot=True)
        app = App(options=options, session=session, screen=pygame.display.set_mode((960, 600)))
        closers: list[Callable[[], object]] = [session.client.close, session.close]
        if backend is not None:
            closers.insert(0, backend.close)
        run = GameRun(app, Driver(app, screenshot_dir=tmp_path / "shots"), closers)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


@pytest.fixture
def studio_backend(live_server: Any) -> Iterator[Callable[[Any], StudioBackend]]:
    """``studio_backend(game)``: the sample's backend for ``game``, on a free port."""
    started: list[StudioBackend] = []

    def start(game: Any) -> StudioBackend:
        backend = StudioBackend(
            live_server.url, game.token("service", "backend"), round_seconds=ROUND_SECONDS
        ).start()
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def store_tools(live_server: Any) -> Iterator[StoreTools]:
    """Service reads, rival players and studio publishing on the live server."""
    tools = StoreTools(live_server)
    yield tools
    tools.close()


@pytest.fixture
def fault_proxy(live_server: Any) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the live server."""
    host, port = live_server.url.removeprefix("http://").split(":")
    proxy = FaultProxy((host, int(port)))
    yield proxy
    proxy.close()
