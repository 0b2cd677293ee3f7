"""Headless play for tests and screenshots: scripted input, frames saved as PNG.

Set ``SDL_VIDEODRIVER=dummy`` before pygame starts (``python -m sample_game --headless`` does),
then drive :class:`sample_game.app.App` with a :class:`Driver`, from Python or from a script
file of one step per line::

    wait_idle                 # until no store call is running or waiting for a retry
    tap space                 # key down, one frame, key up, one frame
    hold right 30             # hold a key for 30 frames
    frames 120                # let 120 frames pass
    until_scene ResultsScene  # run frames until that screen shows
    select magnet             # shop: move the cursor to a sku with the arrow keys
    click buy                 # left-click the centre of a named clickable area
    click 480 300             # ... or a point
    screenshot game-shop      # save <screenshot dir>/game-shop.png
    # comments and blank lines are ignored

The world steps a fixed 1/60 s per frame, so frames run as fast as the machine can draw them;
waits for the network sleep a little between frames instead of spinning the CPU.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pygame

from .app import App

__all__ = ["Driver", "ScriptError", "parse_script"]

KEYS = {
    "space": pygame.K_SPACE,
    "enter": pygame.K_RETURN,
    "return": pygame.K_RETURN,
    "escape": pygame.K_ESCAPE,
    "esc": pygame.K_ESCAPE,
    "tab": pygame.K_TAB,
    "up": pygame.K_UP,
    "down": pygame.K_DOWN,
    "left": pygame.K_LEFT,
    "right": pygame.K_RIGHT,
    "backspace": pygame.K_BACKSPACE,
}


class ScriptError(ValueError):
    """A script line the driver cannot run."""


def key_code(name: str) -> int:
    """A key by name: ``space``, ``left``, ``a``, ``1``..."""
    name = name.lower()
    if name in KEYS:
        return KEYS[name]
    code = pygame.key.key_code(name)
    if code == pygame.K_UNKNOWN:
        raise ScriptError(f"unknown key {name!r}")
    return code


def parse_script(text: str) -> list[list[str]]:
    """The steps of a script: one list of words per non-blank, non-comment line."""
    steps = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            steps.append(words)
    return steps


class Driver:
    """Runs an :class:`App` frame by frame with synthetic keyboard and mouse events."""

    def __init__(
        self,
        app: App,
        *,
        screenshot_dir: str | Path | None = None,
        wait_sleep: float = 0.005,
        max_wait_frames: int = 6000,
    ) -> None:
        self.app = app
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else Path(".")
        self.wait_sleep = wait_sleep
        self.max_wait_frames = max_wait_frames
        self.frames_run = 0
        self.screenshots: list[Path] = []

    # --- frames ---------------------------------------------------------------------------------

    def frame(self, events: Iterable[pygame.event.Event] = ()) -> None:
        """Run one frame with ``events``."""
        self.app.frame(list(events))
        self.frames_run += 1

    def frames(self, count: int) -> None:
        """Run ``count`` frames with no input."""
        for _ in range(count):
            self.frame()

    def until(
        self,
        condition: Callable[[], bool],
        *,
        max_frames: int | None = None,
        what: str = "condition",
    ) -> int:
        """Run frames until ``condition()`` holds; returns how many ran. Sleeps a little per
        frame, because what it waits for is usually a worker thread or a server."""
        limit = max_frames or self.max_wait_frames
        for count in range(limit):
            if condition():
                return count
            self.frame()
            if self.wait_sleep:
                time.sleep(self.wait_sleep)
        raise TimeoutError(f"{what} not reached after {limit} frames")

    def wait_idle(self, *, max_frames: int | None = None) -> int:
        """Run frames until the store session has nothing running or waiting to retry."""
        session = self.app.session
        return self.until(
            lambda: self.app.session is not None and self.app.session.idle,
            max_frames=max_frames,
            what="an idle store session" if session else "a store session",
        )

    def until_scene(self, name: str, *, max_frames: int | None = None) -> int:
        """Run frames until the scene class named ``name`` is showing."""
        return self.until(
            lambda: type(self.app.scene).__name__ == name, max_frames=max_frames, what=name
        )

    # --- input ----------------------------------------------------------------------------------

    def key_down(self, key: int) -> None:
        """Press ``key`` (one frame runs)."""
        self.frame([pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0)])

    def key_up(self, key: int) -> None:
        """Release ``key`` (one frame runs)."""
        self.frame([pygame.event.Event(pygame.KEYUP, key=key, mod=0, unicode="", scancode=0)])

    def tap(self, key: int | str) -> None:
        """Press and release a key."""
        code = key_code(key) if isinstance(key, str) else key
        self.key_down(code)
        self.key_up(code)

    def hold(self, key: int | str, frames: int) -> None:
        """Hold a key down for ``frames`` frames."""
        code = key_code(key) if isinstance(key, str) else key
        self.key_down(code)
        self.frames(max(0, frames - 1))
        self.key_up(code)

    def click(self, target: str | tuple[int, int]) -> None:
        """Left-click a point, or the centre of the clickable area named ``target``."""
        if isinstance(target, str):
            rect = self.app.hotspots.get(target)
            if rect is None:
                raise ScriptError(
                    f"nothing named {target!r} on screen: {sorted(self.app.hotspots)}"
                )
            pos = rect.center
        else:
            pos = target
        self.frame([pygame.event.Event(pygame.MOUSEMOTION, pos=pos, rel=(0, 0), buttons=(0, 0, 0))])
        self.frame([pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1)])
        self.frame([pygame.event.Event(pygame.MOUSEBUTTONUP, pos=pos, button=1)])

    def select(self, sku: str) -> None:
        """In the shop, move the cursor to ``sku`` with the arrow keys."""
        from .scenes import ShopScene

        self.until(
            lambda: isinstance(self.app.scene, ShopScene) and bool(self.app.scene.items),
            what="the shop's catalog",
        )
        scene = self.app.scene
        assert isinstance(scene, ShopScene)
        skus = [item.sku for item in scene.items]
        if sku not in skus:
            raise ScriptError(f"{sku!r} is not in the catalog: {skus}")
        while scene.selected is None or scene.selected.sku != sku:
            self.tap("down" if skus.index(sku) > scene.index else "up")

    def screenshot(self, name: str) -> Path:
        """Save the last frame as ``<screenshot_dir>/<name>.png``."""
        path = self.screenshot_dir / (name if name.endswith(".png") else f"{name}.png")
        self.screenshots.append(self.app.save_screenshot(path))
        return path

    # --- scripts --------------------------------------------------------------------------------

    def run_script(self, steps: list[list[str]]) -> None:
        """Run parsed script steps (see the module docstring)."""
        for words in steps:
            command, args = words[0].lower(), words[1:]
            try:
                self._step(command, args)
            except (IndexError, ValueError) as exc:
                raise ScriptError(f"bad step {' '.join(words)!r}: {exc}") from exc

    def _step(self, command: str, args: list[str]) -> None:
        if command == "frames":
            self.frames(int(args[0]))
        elif command == "tap":
            for name in args:
                self.tap(name)
        elif command == "hold":
            self.hold(args[0], int(args[1]))
        elif command == "click":
            self.click((int(args[0]), int(args[1])) if len(args) == 2 else args[0])
        elif command == "select":
            self.select(args[0])
        elif command == "wait_idle":
            self.wait_idle()
        elif command == "until_scene":
            self.until_scene(args[0])
        elif command == "screenshot":
            self.screenshot(args[0])
        elif command == "autopilot":
            self.app.options.autopilot = args[0].lower() in ("on", "true", "1")
        else:
            raise ScriptError(f"unknown step {command!r}")
