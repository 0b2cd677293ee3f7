"""The arcade round: a ship, falling coins and hazards. Pure logic, no pygame, no network.

The world advances a fixed 1/FPS per :meth:`Round.step`, whatever the wall clock does, so a
headless run with a seed is exactly repeatable, and the coin schedule (:mod:`.rules`) that the
backend's cap is computed from is the one the game really plays. Positions and speeds are
floats in pixels; coins are counted as ints and never touch a float.
"""

from __future__ import annotations

import dataclasses
import math
import random

from . import rules

__all__ = ["Coin", "Controls", "Hazard", "Loadout", "Particle", "Round", "Starfield", "autopilot"]

DT = 1.0 / rules.FPS
SHIP_RADIUS = 16.0
SHIP_SPEED = 380.0
MAGNET_RADIUS = 190.0
SLASH_RADIUS = 120.0
SLASH_COOLDOWN_FRAMES = 90
GRACE_FRAMES = 90
HUD_TOP = 44.0


@dataclasses.dataclass(frozen=True)
class Loadout:
    """What the player's durables change in play."""

    ship_color: tuple[int, int, int] = (90, 200, 255)
    trail_colors: tuple[tuple[int, int, int], ...] = ()
    magnet: bool = False
    sword: bool = False
    dragon: bool = False
    gold: bool = False


@dataclasses.dataclass(frozen=True)
class Controls:
    """One frame of input: a direction (-1..1 per axis) and whether the sword swings."""

    dx: float = 0.0
    dy: float = 0.0
    slash: bool = False


@dataclasses.dataclass
class Coin:
    """A falling coin worth ``value``."""

    x: float
    y: float
    vx: float
    vy: float
    value: int
    phase: float

    @property
    def radius(self) -> float:
        """Big coins are bigger."""
        return 13.0 if self.value > rules.SMALL_COIN_VALUE else 9.0


@dataclasses.dataclass
class Hazard:
    """A tumbling rock; ``shape`` holds its outline as radius factors around the centre."""

    x: float
    y: float
    vx: float
    vy: float
    radius: float
    angle: float
    spin: float
    shape: tuple[float, ...]

    def outline(self) -> list[tuple[float, float]]:
        """The rock's polygon in screen coordinates."""
        count = len(self.shape)
        return [
            (
                self.x + math.cos(self.angle + i * math.tau / count) * self.radius * f,
                self.y + math.sin(self.angle + i * math.tau / count) * self.radius * f,
            )
            for i, f in enumerate(self.shape)
        ]


@dataclasses.dataclass
class Particle:
    """A spark that fades over ``life`` frames."""

    x: float
    y: float
    vx: float
    vy: float
    life: int
    max_life: int
    color: tuple[int, int, int]
    size: float


@dataclasses.dataclass
class FloatText:
    """A "+5" rising from a collected coin."""

    x: float
    y: float
    text: str
    life: int
    color: tuple[int, int, int]


class Starfield:
    """Three layers of stars drifting down: the backdrop of every screen."""

    def __init__(self, width: int, height: int, *, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.width = width
        self.height = height
        self.stars = [
            [rng.uniform(0, width), rng.uniform(0, height), layer]
            for layer in (1, 2, 3)
            for _ in range(40 // layer + 10)
        ]

    def step(self, speed: float = 1.0) -> None:
        """Scroll one frame; ``speed`` 0 freezes it."""
        for star in self.stars:
            star[1] += star[2] * 0.6 * speed
            if star[1] > self.height:
                star[1] -= self.height


class Round:
    """One round of play: ``round_seconds`` long, or until the ship is lost."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        round_seconds: int = rules.DEFAULT_ROUND_SECONDS,
        seed: int | None = None,
        loadout: Loadout | None = None,
    ) -> None:
        self.width = width
        self.height = height
        self.total_frames = rules.round_frames(round_seconds)
        self.rng = random.Random(seed)
        self.loadout = loadout or Loadout()
        self.frame = 0
        self.x = width / 2
        self.y = height - 90.0
        self.vx = 0.0
        self.vy = 0.0
        self.lives = rules.START_LIVES
        self.coins = 0
        self.coins_spawned = 0
        self.value_spawned = 0
        self.coins_caught = 0
        self.hits = 0
        self.blocked = 0
        self.shield_frames = 0
        self.grace_frames = 0
        self.slash_cooldown = 0
        self.slash_frames = 0
        self.shake = 0
        self.over = False
        self.end_reason = ""
        self.items: list[Coin] = []
        self.hazards: list[Hazard] = []
        self.particles: list[Particle] = []
        self.texts: list[FloatText] = []
        self.trail: list[tuple[float, float]] = []
        self.events: list[str] = []
        self._next_hazard = 50

    # --- what the HUD reads ---------------------------------------------------------------------

    @property
    def frames_left(self) -> int:
        """Frames until the round ends on time."""
        return max(0, self.total_frames - self.frame)

    @property
    def seconds_left(self) -> int:
        """Whole seconds left, rounded up (the HUD's clock)."""
        return -(-self.frames_left // rules.FPS)

    @property
    def invulnerable(self) -> bool:
        """Whether a hit does no harm now (shield, or the blink after a hit)."""
        return self.shield_frames > 0 or self.grace_frames > 0

    # --- effects of consumables (the caller has already used the item through the store) --------

    def raise_shield(self) -> None:
        """A shield potion: invulnerable for SHIELD_SECONDS."""
        self.shield_frames = rules.SHIELD_SECONDS * rules.FPS
        self._burst(self.x, self.y, (120, 200, 255), 24)
        self.events.append("shield")

    def heal(self) -> bool:
        """A health potion: one life back; False when lives are full (nothing used)."""
        if self.lives >= rules.MAX_LIVES:
            return False
        self.lives += 1
        self._burst(self.x, self.y, (255, 110, 140), 18)
        self.events.append("heal")
        return True

    def revive(self) -> None:
        """An extra life caught the ship as it was lost."""
        self.lives = 1
        self.over = False
        self.end_reason = ""
        self.grace_frames = GRACE_FRAMES * 2
        self._burst(self.x, self.y, (255, 220, 120), 40)
        self.events.append("revive")

    def end(self, reason: str) -> None:
        """Stop the round (``time``, ``destroyed`` or ``quit``)."""
        self.over = True
        self.end_reason = reason

    # --- the simulation -------------------------------------------------------------------------

    def step(self, controls: Controls) -> list[str]:
        """Advance one frame; returns what happened (``coin``, ``hit``, ``out_of_lives``...).

        ``out_of_lives`` leaves the round running for the caller to :meth:`revive` it (with an
        extra life) or :meth:`end` it.
        """
        self.events = []
        if self.over:
            return self.events
        self.frame += 1
        self._move_ship(controls)
        self._spawn()
        self._move_coins()
        self._move_hazards()
        if controls.slash:
            self._slash()
        self._age_effects()
        if self.frame >= self.total_frames and not self.over:
            self.end("time")
            self.events.append("time_up")
        return self.events

    def _move_ship(self, controls: Controls) -> None:
        length = math.hypot(controls.dx, controls.dy)
        dx, dy = (
            (controls.dx / length, controls.dy / length)
            if length > 1
            else (controls.dx, controls.dy)
        )
        # Ease towards the wanted velocity: responsive, but with a little weight to it.
        blend = min(1.0, 14.0 * DT)
        self.vx += (dx * SHIP_SPEED - self.vx) * blend
        self.vy += (dy * SHIP_SPEED - self.vy) * blend
        self.x = min(self.width - SHIP_RADIUS, max(SHIP_RADIUS, self.x + self.vx * DT))
        self.y = min(self.height - SHIP_RADIUS, max(HUD_TOP + SHIP_RADIUS, self.y + self.vy * DT))
        self.trail.append((self.x, self.y + SHIP_RADIUS * 0.8))
        del self.trail[:-26]

    def _spawn(self) -> None:
        if self.frame % rules.COIN_EVERY_FRAMES == 0:
            value = rules.coin_value(self.coins_spawned)
            self.coins_spawned += 1
            self.value_spawned += value
            self.items.append(
                Coin(
                    x=self.rng.uniform(40, self.width - 40),
                    y=HUD_TOP - 10,
                    vx=0.0,
                    vy=self.rng.uniform(95, 150),
                    value=value,
                    phase=self.rng.uniform(0, math.tau),
                )
            )
        self._next_hazard -= 1
        if self._next_hazard <= 0:
            progress = self.frame / self.total_frames
            self._next_hazard = int(72 - 46 * progress) + self.rng.randint(0, 18)
            radius = self.rng.uniform(15, 30)
            count = self.rng.randint(7, 10)
            self.hazards.append(
                Hazard(
                    x=self.rng.uniform(30, self.width - 30),
                    y=HUD_TOP - radius,
                    vx=self.rng.uniform(-70, 70),
                    vy=self.rng.uniform(150, 230) + 120 * progress,
                    radius=radius,
                    angle=self.rng.uniform(0, math.tau),
                    spin=self.rng.uniform(-3, 3),
                    shape=tuple(self.rng.uniform(0.72, 1.08) for _ in range(count)),
                )
            )

    def _move_coins(self) -> None:
        kept: list[Coin] = []
        for coin in self.items:
            coin.phase += 4 * DT
            if self.loadout.magnet:
                dist = math.hypot(self.x - coin.x, self.y - coin.y)
                if 0 < dist < MAGNET_RADIUS:
                    pull = 900.0 * (1 - dist / MAGNET_RADIUS) + 120.0
                    coin.vx += (self.x - coin.x) / dist * pull * DT
                    coin.vy += (self.y - coin.y) / dist * pull * DT
            coin.x += (coin.vx + math.sin(coin.phase) * 25) * DT
            coin.y += coin.vy * DT
            if math.hypot(self.x - coin.x, self.y - coin.y) < SHIP_RADIUS + coin.radius + 4:
                self.coins += coin.value
                self.coins_caught += 1
                self.events.append("coin")
                color = (255, 214, 90) if coin.value == rules.SMALL_COIN_VALUE else (255, 160, 60)
                self._burst(coin.x, coin.y, color, 8 if coin.value == 1 else 18)
                self.texts.append(FloatText(coin.x, coin.y, f"+{coin.value}", 40, color))
            elif coin.y < self.height + 20:
                kept.append(coin)
        self.items = kept

    def _move_hazards(self) -> None:
        kept: list[Hazard] = []
        for rock in self.hazards:
            rock.x += rock.vx * DT
            rock.y += rock.vy * DT
            rock.angle += rock.spin * DT
            if rock.x < rock.radius or rock.x > self.width - rock.radius:
                rock.vx = -rock.vx
            if math.hypot(self.x - rock.x, self.y - rock.y) < SHIP_RADIUS * 0.8 + rock.radius:
                self._collide(rock)
                continue
            if rock.y < self.height + 40:
                kept.append(rock)
        self.hazards = kept

    def _collide(self, rock: Hazard) -> None:
        self._burst(rock.x, rock.y, (200, 120, 100), 20)
        if self.shield_frames > 0:
            self.blocked += 1
            self.events.append("blocked")
            return
        if self.grace_frames > 0:
            return
        self.lives -= 1
        self.hits += 1
        self.grace_frames = GRACE_FRAMES
        self.shake = 18
        self.events.append("hit")
        if self.lives <= 0:
            self.lives = 0
            self.end("destroyed")
            self.events.append("out_of_lives")

    def _slash(self) -> None:
        if not self.loadout.sword or self.slash_cooldown > 0:
            return
        self.slash_cooldown = SLASH_COOLDOWN_FRAMES
        self.slash_frames = 14
        self.events.append("slash")
        kept = []
        for rock in self.hazards:
            if math.hypot(self.x - rock.x, self.y - rock.y) < SLASH_RADIUS + rock.radius:
                self._burst(rock.x, rock.y, (230, 230, 255), 16)
            else:
                kept.append(rock)
        self.hazards = kept

    def _age_effects(self) -> None:
        self.shield_frames = max(0, self.shield_frames - 1)
        self.grace_frames = max(0, self.grace_frames - 1)
        self.slash_cooldown = max(0, self.slash_cooldown - 1)
        self.slash_frames = max(0, self.slash_frames - 1)
        self.shake = max(0, self.shake - 1)
        for p in self.particles:
            p.x += p.vx * DT
            p.y += p.vy * DT
            p.vx *= 0.94
            p.vy *= 0.94
            p.life -= 1
        self.particles = [p for p in self.particles if p.life > 0]
        for t in self.texts:
            t.y -= 0.8
            t.life -= 1
        self.texts = [t for t in self.texts if t.life > 0]

    def _burst(self, x: float, y: float, color: tuple[int, int, int], count: int) -> None:
        for _ in range(count):
            angle = self.rng.uniform(0, math.tau)
            speed = self.rng.uniform(60, 260)
            life = self.rng.randint(14, 32)
            self.particles.append(
                Particle(
                    x, y, math.cos(angle) * speed, math.sin(angle) * speed, life, life, color, 3.0
                )
            )


def autopilot(world: Round) -> Controls:
    """A simple pilot for demos, screenshots and tests: try a few headings half a second
    ahead, keep the one that stays clear of rocks and passes closest to a valuable coin."""
    best: tuple[float, float, float] = (-math.inf, 0.0, 0.0)
    for dx in (-1.0, -0.4, 0.0, 0.4, 1.0):
        for dy in (-1.0, -0.4, 0.0, 0.4, 1.0):
            score = _score_heading(world, dx, dy)
            if score > best[0]:
                best = (score, dx, dy)
    near = any(
        math.hypot(world.x - r.x, world.y - r.y) < SLASH_RADIUS * 0.8 + r.radius
        for r in world.hazards
    )
    return Controls(best[1], best[2], slash=near and world.loadout.sword)


def _score_heading(world: Round, dx: float, dy: float) -> float:
    vx, vy = dx * SHIP_SPEED, dy * SHIP_SPEED
    danger = 0.0 if world.invulnerable else 1.0
    penalty = 0.0
    closest = [math.inf] * len(world.items)
    for step in (4, 8, 12, 16, 20, 25, 30):
        t = step * DT
        x = min(world.width - SHIP_RADIUS, max(SHIP_RADIUS, world.x + vx * t))
        y = min(world.height - SHIP_RADIUS, max(HUD_TOP + SHIP_RADIUS, world.y + vy * t))
        for rock in world.hazards:
            gap = math.hypot(x - (rock.x + rock.vx * t), y - (rock.y + rock.vy * t))
            gap -= rock.radius + SHIP_RADIUS
            if gap < 36:
                penalty += danger * (36 - gap) * 40 / (1 + step / 10)
        for i, coin in enumerate(world.items):
            gap = math.hypot(x - coin.x, y - (coin.y + coin.vy * t)) / (1 + step / 60)
            closest[i] = min(closest[i], gap)
        # Rocks arrive from the top without warning: keep some room above the ship.
        penalty += max(0.0, HUD_TOP + 80 - y) * 0.5
    reach = max(
        (coin.value * 4000 / (40 + gap) for coin, gap in zip(world.items, closest, strict=True)),
        default=0.0,
    )
    return reach - penalty
