"""The game application: one frame loop, a scene at a time, store calls polled each frame.

:meth:`App.frame` is everything one frame does (poll the store, handle input, simulate,
draw); :meth:`App.run` calls it at 60 fps with real input, and the headless driver
(:mod:`sample_game.headless`) calls it with scripted input as fast as it likes. Nothing in a
frame waits on the network.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pygame

from . import rules
from .draw import PALETTE, Fonts, draw_button, draw_panel, hex_color, spinner
from .session import StoreSession
from .world import Loadout, Starfield

__all__ = ["HEIGHT", "WIDTH", "App", "GameOptions", "Launching", "Scene"]

WIDTH, HEIGHT = 960, 600
DEFAULT_SHIP = (90, 200, 255)
TOAST_COLORS = {
    "ok": PALETTE["ok"],
    "error": PALETTE["error"],
    "warn": PALETTE["warn"],
    "info": PALETTE["info"],
}


@dataclasses.dataclass
class GameOptions:
    """How the game plays: round length (must match the backend's), seed, autopilot, fps."""

    round_seconds: int = rules.DEFAULT_ROUND_SECONDS
    seed: int | None = None
    autopilot: bool = False
    fps: int = rules.FPS


class Launching(Protocol):
    """Something bringing the store up off the frame loop (see ``sample_game.__main__``)."""

    status: str
    error: str | None

    def take_session(self) -> StoreSession | None:
        """The session once the store is up, exactly once; else ``None``."""


class Scene(Protocol):
    """One screen of the game."""

    def handle(self, event: pygame.event.Event) -> None:
        """React to one input event."""

    def update(self) -> None:
        """Advance one frame."""

    def draw(self, target: pygame.Surface) -> None:
        """Draw the frame."""


class App:
    """The game: owns the window surface, the current scene and the store session."""

    def __init__(
        self,
        *,
        options: GameOptions | None = None,
        session: StoreSession | None = None,
        launching: Launching | None = None,
        screen: pygame.Surface | None = None,
    ) -> None:
        from .scenes import LoadingScene, TitleScene

        self.options = options or GameOptions()
        # Display and fonts only: pygame.init() would also open a sound device we do not use.
        if not pygame.display.get_init():
            pygame.display.init()
        if not pygame.font.get_init():
            pygame.font.init()
        if screen is None:
            pygame.display.set_caption("Star Skipper - a Shopkeep sample game")
            screen = pygame.display.set_mode((WIDTH, HEIGHT))
        self.screen = screen
        self.fonts = Fonts()
        self.stars = Starfield(WIDTH, HEIGHT)
        self.session = session
        self.launching = launching
        self.frame_no = 0
        self.rounds_played = 0
        self.running = True
        self.held: set[int] = set()
        self.mouse = (0, 0)
        self.hotspots: dict[str, pygame.Rect] = {}
        self._drawing: dict[str, pygame.Rect] = {}
        self.scene: Scene = TitleScene(self) if session is not None else LoadingScene(self)
        if session is not None:
            session.start()

    # --- the loop -------------------------------------------------------------------------------

    def frame(self, events: Iterable[pygame.event.Event] = ()) -> None:
        """One frame: poll the store, handle ``events``, simulate, draw."""
        self.frame_no += 1
        if self.session is None and self.launching is not None:
            session = self.launching.take_session()
            if session is not None:
                self.attach(session)
        if self.session is not None:
            self.session.tick()
        for event in events:
            self._dispatch(event)
        self.scene.update()
        self._drawing = {}
        self.scene.draw(self.screen)
        self._draw_overlay(self.screen)
        self.hotspots = self._drawing

    def run(self) -> None:
        """Play with the real keyboard and mouse until the window closes."""
        clock = pygame.time.Clock()
        while self.running:
            self.frame(pygame.event.get())
            pygame.display.flip()
            clock.tick(self.options.fps)

    def attach(self, session: StoreSession) -> None:
        """The store is up: start the session and go to the hangar."""
        from .scenes import TitleScene

        self.session = session
        session.start()
        self.switch(TitleScene(self))

    def switch(self, scene: Scene) -> None:
        """Show ``scene`` from the next frame on."""
        self.scene = scene

    def hotspot(self, name: str, rect: pygame.Rect) -> pygame.Rect:
        """Register a clickable area drawn this frame (the driver clicks these by name)."""
        self._drawing[name] = rect
        return rect

    def hit(self, pos: tuple[int, int]) -> str | None:
        """The name of the clickable area under ``pos`` in the last frame drawn."""
        for name, rect in reversed(list(self.hotspots.items())):
            if rect.collidepoint(pos):
                return name
        return None

    def _dispatch(self, event: pygame.event.Event) -> None:
        # Key state is tracked from events, not pygame.key.get_pressed(), so that scripted
        # events drive the game exactly like a keyboard.
        if event.type == pygame.QUIT:
            self.running = False
            return
        if event.type == pygame.KEYDOWN:
            self.held.add(event.key)
        elif event.type == pygame.KEYUP:
            self.held.discard(event.key)
        elif event.type == pygame.MOUSEMOTION:
            self.mouse = event.pos
        elif event.type == pygame.WINDOWFOCUSLOST:
            # Key-ups sent while another window has focus never arrive: forget held keys.
            self.held.clear()
        if self.session is not None and self.session.dialog is not None:
            self._dialog_input(event)
            return
        self.scene.handle(event)

    def _dialog_input(self, event: pygame.event.Event) -> None:
        assert self.session is not None
        if event.type == pygame.KEYDOWN:
            if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER, pygame.K_y):
                self.session.answer_dialog(True)
            elif event.key in (pygame.K_ESCAPE, pygame.K_n, pygame.K_BACKSPACE):
                self.session.answer_dialog(False)
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            name = self.hit(event.pos)
            if name in ("dialog:yes", "dialog:no"):
                self.session.answer_dialog(name == "dialog:yes")

    # --- shared game state ----------------------------------------------------------------------

    def loadout(self) -> Loadout:
        """What the player's durables do in play, from the inventory and the items' metadata."""
        session = self.session
        if session is None:
            return Loadout()
        color = DEFAULT_SHIP
        gold = session.owned("ship_gold") > 0
        if gold:
            item = session.item("ship_gold")
            color = hex_color(item.metadata.get("color") if item else None, PALETTE["gold"])
        trail: tuple[tuple[int, int, int], ...] = ()
        if session.owned("trail_rainbow") > 0:
            item = session.item("trail_rainbow")
            raw = item.metadata.get("colors") if item else None
            names = raw if isinstance(raw, list) else ["#ff5555", "#ffd255", "#55ff88", "#55aaff"]
            trail = tuple(hex_color(c, PALETTE["accent"]) for c in names)
        return Loadout(
            ship_color=color,
            trail_colors=trail,
            magnet=session.owned("magnet") > 0,
            sword=session.owned("sword") > 0,
            dragon=session.owned("dragon_egg") > 0,
            gold=gold,
        )

    def next_seed(self) -> int | None:
        """The seed of the next round: fixed runs stay repeatable, round after round."""
        self.rounds_played += 1
        if self.options.seed is None:
            return None
        return self.options.seed + self.rounds_played - 1

    # --- overlay: toasts, the price dialog, the connection badge ------------------------------

    def _draw_overlay(self, target: pygame.Surface) -> None:
        session = self.session
        if session is None:
            return
        # Each screen says where its toasts go so they cover nothing the player needs (the HUD
        # in play, the buttons on the results); stacks grow away from that edge.
        edge, y = getattr(self.scene, "toast_anchor", ("bottom", HEIGHT - 4))
        if edge == "top":
            for toast in session.toasts:
                y = self._draw_toast(target, toast.text, toast.kind, toast.frames_left, y) + 6
        else:
            for toast in reversed(session.toasts):
                y = self._draw_toast(target, toast.text, toast.kind, toast.frames_left, y, up=True)
                y -= 6
        if session.retrying:
            self._draw_badge(target, session)
        if session.dialog is not None:
            self._draw_dialog(target, session)

    def _draw_toast(
        self, target: pygame.Surface, text: str, kind: str, left: int, y: int, *, up: bool = False
    ) -> int:
        """Draw one toast at ``y`` (its top, or its bottom when ``up``); returns the far edge."""
        color = TOAST_COLORS.get(kind, PALETTE["info"])
        surface = self.fonts.render(text, 24, PALETTE["text"])
        rect = pygame.Rect(0, 0, surface.get_width() + 56, 38)
        if up:
            rect.midbottom = (WIDTH // 2, y)
        else:
            rect.midtop = (WIDTH // 2, y)
        alpha = 240 if left > 30 else int(240 * left / 30)
        box = pygame.Surface(rect.size, pygame.SRCALPHA)
        pygame.draw.rect(box, (18, 20, 40, alpha), box.get_rect(), border_radius=10)
        pygame.draw.rect(box, (*color, alpha), box.get_rect(), width=2, border_radius=10)
        pygame.draw.rect(box, (*color, alpha), (0, 0, 10, rect.height), border_radius=10)
        surface.set_alpha(alpha)
        box.blit(surface, (36, (rect.height - surface.get_height()) // 2))
        pygame.draw.circle(box, (*color, alpha), (24, rect.height // 2), 5)
        target.blit(box, rect)
        return rect.top if up else rect.bottom

    def _draw_badge(self, target: pygame.Surface, session: StoreSession) -> None:
        if not session.online:
            text, color = "Offline - retrying...", PALETTE["warn"]
        else:
            waiting = len(session.pending_purchases) + len(session.stalled)
            text, color = f"Retrying {waiting} with the store...", PALETTE["info"]
        surface = self.fonts.render(text, 22, PALETTE["text"])
        rect = pygame.Rect(0, 0, surface.get_width() + 50, 30)
        rect.bottomright = (WIDTH - 12, HEIGHT - 40)
        draw_panel(target, rect, border=color, radius=15)
        spinner(target, (rect.left + 20, rect.centery), self.frame_no, color)
        target.blit(surface, surface.get_rect(midleft=(rect.left + 36, rect.centery)))

    def _draw_dialog(self, target: pygame.Surface, session: StoreSession) -> None:
        dialog = session.dialog
        assert dialog is not None
        shade = pygame.Surface((WIDTH, HEIGHT), pygame.SRCALPHA)
        shade.fill((0, 0, 0, 150))
        target.blit(shade, (0, 0))
        box = pygame.Rect(0, 0, 520, 230)
        box.center = (WIDTH // 2, HEIGHT // 2)
        draw_panel(target, box, border=PALETTE["warn"], alpha=250)
        fonts = self.fonts
        fonts.draw(
            target,
            "The price has changed",
            (box.centerx, box.top + 22),
            size=34,
            color=PALETTE["warn"],
            anchor="midtop",
        )
        fonts.draw(
            target,
            f"{dialog.name} was {dialog.old}",
            (box.centerx, box.top + 70),
            size=26,
            color=PALETTE["dim"],
            anchor="midtop",
        )
        fonts.draw(
            target,
            f"and now costs {dialog.new}.",
            (box.centerx, box.top + 100),
            size=28,
            anchor="midtop",
        )
        fonts.draw(
            target,
            "Buy it at the new price?",
            (box.centerx, box.top + 132),
            size=24,
            color=PALETTE["dim"],
            anchor="midtop",
        )
        yes = self.hotspot("dialog:yes", pygame.Rect(box.left + 40, box.bottom - 62, 210, 42))
        no = self.hotspot("dialog:no", pygame.Rect(box.right - 250, box.bottom - 62, 210, 42))
        draw_button(
            target, fonts, yes, f"Buy for {dialog.new} [Y]", color=PALETTE["ok"], hot=True, size=22
        )
        draw_button(target, fonts, no, "No thanks [N]", color=(150, 150, 175), size=22)

    # --- helpers for screens --------------------------------------------------------------------

    def now(self) -> datetime:
        """The wall clock, for sale windows and countdowns."""
        return datetime.now(UTC)

    def pulse(self, period: int = 60) -> float:
        """0..1..0 over ``period`` frames: for blinking prompts."""
        return 0.5 + 0.5 * math.sin(self.frame_no * math.tau / period)

    def save_screenshot(self, path: str | Path) -> Path:
        """Save the last frame drawn as a PNG."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.screen, str(target))
        return target


def on_key(event: pygame.event.Event, *keys: int) -> bool:
    """Whether ``event`` is a key press of one of ``keys``."""
    return event.type == pygame.KEYDOWN and event.key in keys


def clicked(app: App, event: pygame.event.Event) -> str | None:
    """The hotspot a left click landed on, if ``event`` is one."""
    if event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
        return app.hit(event.pos)
    return None
