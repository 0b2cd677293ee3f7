"""Drawing: every sprite is drawn with pygame primitives, so the game ships no image files.

Text uses pygame's bundled font (the same on every machine), so only ASCII and a few Latin-1
signs appear in strings; arrows, hearts and currency marks are drawn as shapes instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pygame

from .world import Hazard, Round, Starfield

__all__ = [
    "BG",
    "PALETTE",
    "Fonts",
    "currency_icon",
    "draw_button",
    "draw_hazard",
    "draw_heart",
    "draw_item_icon",
    "draw_panel",
    "draw_ribbon",
    "draw_ship",
    "draw_stars",
    "draw_world",
    "hex_color",
    "strike_through",
]

Color = tuple[int, int, int]

BG: Color = (12, 14, 32)
PALETTE: dict[str, Color] = {
    "text": (232, 236, 255),
    "dim": (140, 150, 190),
    "panel": (24, 28, 58),
    "panel_hi": (38, 44, 88),
    "border": (70, 80, 140),
    "accent": (110, 200, 255),
    "gold": (255, 206, 84),
    "gem": (190, 120, 255),
    "usd": (110, 220, 150),
    "ok": (70, 200, 120),
    "error": (235, 80, 90),
    "warn": (245, 170, 60),
    "info": (90, 150, 240),
    "hazard": (150, 110, 100),
}


def hex_color(value: object, default: Color) -> Color:
    """``"#f5c542"`` as an RGB tuple (a catalog item's metadata), else ``default``."""
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
        except ValueError:
            return default
    return default


class Fonts:
    """Rendered-text cache: the same string in the same style is rasterised once."""

    def __init__(self) -> None:
        self._fonts: dict[int, pygame.font.Font] = {}
        self._cache: dict[tuple[str, int, Color], pygame.Surface] = {}

    def font(self, size: int) -> pygame.font.Font:
        """pygame's bundled font at ``size``."""
        if size not in self._fonts:
            self._fonts[size] = pygame.font.Font(None, size)
        return self._fonts[size]

    def render(self, text: str, size: int, color: Color) -> pygame.Surface:
        """``text`` rendered (cached)."""
        key = (text, size, color)
        surface = self._cache.get(key)
        if surface is None:
            if len(self._cache) > 2000:
                self._cache.clear()
            surface = self.font(size).render(text, True, color)
            self._cache[key] = surface
        return surface

    def draw(
        self,
        target: pygame.Surface,
        text: str,
        pos: tuple[float, float],
        *,
        size: int = 24,
        color: Color = PALETTE["text"],
        anchor: str = "topleft",
        shadow: bool = False,
    ) -> pygame.Rect:
        """Draw ``text`` with its ``anchor`` (a pygame.Rect attribute) at ``pos``."""
        surface = self.render(text, size, color)
        rect = surface.get_rect(**{anchor: (round(pos[0]), round(pos[1]))})
        if shadow:
            target.blit(self.render(text, size, (0, 0, 0)), rect.move(2, 2))
        target.blit(surface, rect)
        return rect

    def wrap(self, text: str, size: int, width: int) -> list[str]:
        """``text`` split into lines no wider than ``width`` pixels."""
        font = self.font(size)
        lines: list[str] = []
        line = ""
        for word in text.split():
            candidate = f"{line} {word}".strip()
            if font.size(candidate)[0] <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        if line:
            lines.append(line)
        return lines


def draw_panel(
    target: pygame.Surface,
    rect: pygame.Rect,
    *,
    color: Color = PALETTE["panel"],
    border: Color = PALETTE["border"],
    radius: int = 10,
    alpha: int = 235,
) -> None:
    """A rounded, slightly translucent panel."""
    panel = pygame.Surface(rect.size, pygame.SRCALPHA)
    pygame.draw.rect(panel, (*color, alpha), panel.get_rect(), border_radius=radius)
    pygame.draw.rect(panel, (*border, 255), panel.get_rect(), width=2, border_radius=radius)
    target.blit(panel, rect)


def strike_through(target: pygame.Surface, fonts: Fonts, text: str, right: int, y: int) -> int:
    """``text`` dimmed and struck through, ending at ``right`` (an original price beside an
    offer's); returns the x left of it."""
    surface = fonts.render(text, 24, PALETTE["dim"])
    rect = surface.get_rect(midright=(right, y))
    target.blit(surface, rect)
    pygame.draw.line(target, PALETTE["error"], (rect.left - 2, y + 1), (rect.right + 2, y - 1), 2)
    return rect.left - 6


def draw_button(
    target: pygame.Surface,
    fonts: Fonts,
    rect: pygame.Rect,
    label: str,
    *,
    color: Color = PALETTE["accent"],
    enabled: bool = True,
    hot: bool = False,
    size: int = 24,
) -> None:
    """A button; ``hot`` is the keyboard's current choice."""
    fill = color if enabled else (70, 74, 100)
    if hot and enabled:
        glow = rect.inflate(8, 8)
        pygame.draw.rect(target, (255, 255, 255), glow, width=2, border_radius=12)
    pygame.draw.rect(target, fill, rect, border_radius=9)
    shade = tuple(max(0, c - 60) for c in fill)
    pygame.draw.rect(target, shade, rect, width=2, border_radius=9)
    text = (16, 18, 36) if enabled else (150, 150, 170)
    fonts.draw(target, label, rect.center, size=size, color=text, anchor="center")


def draw_stars(target: pygame.Surface, stars: Starfield) -> None:
    """The starfield backdrop."""
    target.fill(BG)
    for x, y, layer in stars.stars:
        shade = 70 + 55 * int(layer)
        pygame.draw.circle(target, (shade, shade, min(255, shade + 30)), (int(x), int(y)), layer)


def draw_ship(
    target: pygame.Surface,
    x: float,
    y: float,
    *,
    color: Color,
    tilt: float = 0.0,
    scale: float = 1.0,
    flame: int = 0,
    gold: bool = False,
) -> None:
    """The player's ship, pointing up; ``tilt`` leans it while strafing."""

    def pt(px: float, py: float) -> tuple[float, float]:
        px, py = px * scale, py * scale
        return (
            x + px * math.cos(tilt) - py * math.sin(tilt),
            y + px * math.sin(tilt) + py * math.cos(tilt),
        )

    if flame:
        length = 14 + (flame % 6) * 2
        pygame.draw.polygon(target, (255, 150, 60), [pt(-6, 14), pt(6, 14), pt(0, 14 + length)])
        pygame.draw.polygon(
            target, (255, 240, 160), [pt(-3, 14), pt(3, 14), pt(0, 10 + length * 0.6)]
        )
    dark = tuple(max(0, c - 80) for c in color)
    wing = [pt(-22, 14), pt(-8, -2), pt(8, -2), pt(22, 14), pt(0, 8)]
    pygame.draw.polygon(target, dark, wing)
    body = [pt(0, -22), pt(10, 12), pt(0, 16), pt(-10, 12)]
    pygame.draw.polygon(target, color, body)
    pygame.draw.polygon(target, (255, 255, 255), body, width=1)
    pygame.draw.circle(target, (30, 40, 80), pt(0, -2), 5 * scale)
    pygame.draw.circle(target, (160, 230, 255), pt(-1.5, -3.5), 2 * scale)
    if gold:
        pygame.draw.line(target, (255, 250, 210), pt(-4, -12), pt(-7, 6), 2)


def draw_heart(target: pygame.Surface, x: float, y: float, size: float, color: Color) -> None:
    """A heart (a life) centred at ``x, y``."""
    r = size * 0.3
    pygame.draw.circle(target, color, (x - r, y - r * 0.4), r)
    pygame.draw.circle(target, color, (x + r, y - r * 0.4), r)
    pygame.draw.polygon(
        target, color, [(x - 2 * r, y - r * 0.2), (x + 2 * r, y - r * 0.2), (x, y + size * 0.55)]
    )


def draw_coin(target: pygame.Surface, x: float, y: float, radius: float, phase: float) -> None:
    """A spinning gold coin."""
    width = max(2.0, abs(math.cos(phase)) * radius * 2)
    rect = pygame.Rect(0, 0, width, radius * 2)
    rect.center = (round(x), round(y))
    pygame.draw.ellipse(target, (196, 140, 30), rect.inflate(2, 2))
    pygame.draw.ellipse(target, PALETTE["gold"], rect)
    if width > 6:
        pygame.draw.ellipse(target, (255, 240, 170), rect.inflate(-width * 0.5, -radius), width=1)


def draw_hazard(target: pygame.Surface, rock: Hazard) -> None:
    """A tumbling rock with a glowing red core (it hurts)."""
    outline = rock.outline()
    pygame.draw.polygon(target, (95, 70, 72), outline)
    pygame.draw.polygon(target, (200, 90, 80), outline, width=2)
    pygame.draw.circle(target, (160, 60, 60), (rock.x, rock.y), rock.radius * 0.25)


def currency_icon(target: pygame.Surface, code: str, center: tuple[float, float], r: float) -> None:
    """A small mark for a currency: a coin, a gem, or a dollar disc."""
    x, y = center
    if code == "COINS":
        pygame.draw.circle(target, (196, 140, 30), center, r)
        pygame.draw.circle(target, PALETTE["gold"], center, r - 2)
        pygame.draw.circle(target, (255, 240, 170), center, r * 0.45, width=1)
    elif code == "GEMS":
        points = [(x, y - r), (x + r * 0.8, y - r * 0.2), (x, y + r), (x - r * 0.8, y - r * 0.2)]
        pygame.draw.polygon(target, PALETTE["gem"], points)
        pygame.draw.polygon(target, (240, 210, 255), points, width=1)
        pygame.draw.line(
            target, (240, 210, 255), (x - r * 0.8, y - r * 0.2), (x + r * 0.8, y - r * 0.2)
        )
    else:
        pygame.draw.circle(target, PALETTE["usd"], center, r)
        pygame.draw.line(target, (20, 60, 30), (x, y - r * 0.7), (x, y + r * 0.7), 2)
        pygame.draw.arc(
            target,
            (20, 60, 30),
            pygame.Rect(x - r * 0.45, y - r * 0.55, r * 0.9, r * 0.55),
            0.3,
            4.4,
            2,
        )
        pygame.draw.arc(
            target, (20, 60, 30), pygame.Rect(x - r * 0.45, y, r * 0.9, r * 0.55), 3.5, 7.5, 2
        )


def draw_item_icon(
    target: pygame.Surface, sku: str, rect: pygame.Rect, metadata: dict[str, object]
) -> None:
    """A picture of an item, by sku; unknown skus get a lettered tile."""
    cx, cy = rect.center
    r = min(rect.width, rect.height) / 2 - 2
    if sku == "potion":
        pygame.draw.circle(target, (220, 60, 90), (cx, cy + r * 0.25), r * 0.6)
        pygame.draw.rect(target, (200, 200, 220), (cx - r * 0.2, cy - r * 0.8, r * 0.4, r * 0.55))
        pygame.draw.circle(target, (255, 170, 190), (cx - r * 0.2, cy + r * 0.05), r * 0.15)
    elif sku == "shield":
        points = [
            (cx - r * 0.7, cy - r * 0.6),
            (cx + r * 0.7, cy - r * 0.6),
            (cx + r * 0.6, cy + r * 0.2),
            (cx, cy + r * 0.85),
            (cx - r * 0.6, cy + r * 0.2),
        ]
        pygame.draw.polygon(target, (80, 150, 255), points)
        pygame.draw.polygon(target, (200, 230, 255), points, width=2)
    elif sku == "sword":
        pygame.draw.line(
            target, (220, 225, 240), (cx - r * 0.6, cy + r * 0.6), (cx + r * 0.7, cy - r * 0.7), 4
        )
        pygame.draw.line(
            target, (200, 160, 60), (cx - r * 0.6, cy + r * 0.1), (cx - r * 0.1, cy + r * 0.6), 4
        )
    elif sku == "ship_gold":
        draw_ship(
            target,
            cx,
            cy + 2,
            color=hex_color(metadata.get("color"), PALETTE["gold"]),
            scale=r / 22,
            gold=True,
        )
    elif sku == "trail_rainbow":
        colors = metadata.get("colors")
        palette = (
            [hex_color(c, PALETTE["accent"]) for c in colors]
            if isinstance(colors, list)
            else [PALETTE["accent"]]
        )
        for i, color in enumerate(palette):
            box = pygame.Rect(0, 0, (r - i * 4) * 2, (r - i * 4) * 2)
            box.center = (cx, cy + r * 0.5)
            pygame.draw.arc(target, color, box, 0, math.pi, 3)
    elif sku == "magnet":
        box = pygame.Rect(cx - r * 0.6, cy - r * 0.7, r * 1.2, r * 1.2)
        pygame.draw.arc(target, (230, 60, 70), box, math.pi, math.tau, 6)
        pygame.draw.rect(target, (230, 60, 70), (cx - r * 0.6, cy - r * 0.7, 6, r * 0.6))
        pygame.draw.rect(target, (230, 60, 70), (cx + r * 0.6 - 6, cy - r * 0.7, 6, r * 0.6))
        pygame.draw.rect(target, (220, 220, 230), (cx - r * 0.6, cy - r * 0.8, 6, 6))
        pygame.draw.rect(target, (220, 220, 230), (cx + r * 0.6 - 6, cy - r * 0.8, 6, 6))
    elif sku == "extra_life":
        draw_heart(target, cx, cy, r * 1.4, (255, 90, 120))
    elif sku == "starter_pack":
        box = pygame.Rect(0, 0, r * 1.5, r * 1.2)
        box.center = (cx, cy + 2)
        pygame.draw.rect(target, (170, 110, 60), box, border_radius=3)
        pygame.draw.rect(target, (240, 200, 90), (box.centerx - 3, box.top, 6, box.height))
        pygame.draw.rect(target, (240, 200, 90), (box.left, box.centery - 3, box.width, 6))
    elif sku == "welcome_chest":  # only new players see it (its segment)
        box = pygame.Rect(0, 0, r * 1.5, r * 1.1)
        box.center = (cx, cy + 4)
        pygame.draw.rect(target, (120, 80, 160), box, border_radius=4)
        lid = pygame.Rect(box.left, box.top - r * 0.35, box.width, r * 0.45)
        pygame.draw.rect(target, (150, 105, 195), lid, border_radius=6)
        pygame.draw.rect(target, (240, 200, 90), (cx - 4, box.top - 2, 8, 10))
    elif sku == "gem_pouch":
        pygame.draw.circle(target, (150, 100, 60), (cx, cy + r * 0.2), r * 0.65)
        currency_icon(target, "GEMS", (cx, cy - r * 0.25), r * 0.45)
    elif sku == "dragon_egg":
        box = pygame.Rect(0, 0, r * 1.2, r * 1.6)
        box.center = (cx, cy)
        pygame.draw.ellipse(target, (110, 200, 140), box)
        for dx, dy in ((-0.2, -0.3), (0.25, 0.1), (-0.1, 0.4)):
            pygame.draw.circle(target, (40, 120, 80), (cx + r * dx, cy + r * dy), r * 0.13)
    elif sku == "phoenix_feather":
        pygame.draw.ellipse(target, (255, 120, 40), (cx - r * 0.3, cy - r * 0.85, r * 0.6, r * 1.5))
        pygame.draw.ellipse(target, (255, 210, 80), (cx - r * 0.15, cy - r * 0.6, r * 0.3, r * 1.0))
        pygame.draw.line(target, (120, 60, 20), (cx, cy - r * 0.6), (cx, cy + r * 0.9), 2)
    elif sku == "tip":
        currency_icon(target, "USD", (cx, cy), r * 0.8)
    else:
        pygame.draw.rect(target, PALETTE["panel_hi"], rect.inflate(-4, -4), border_radius=6)


def draw_world(
    target: pygame.Surface,
    world: Round,
    stars: Starfield,
    fonts: Fonts,
    *,
    frame: int,
) -> tuple[int, int]:
    """Draw a round; returns the screen-shake offset used (the HUD is drawn unshaken)."""
    draw_stars(target, stars)
    shake = world.shake
    offset = (
        (int(math.sin(frame * 2.1) * shake * 0.5), int(math.cos(frame * 1.7) * shake * 0.5))
        if shake
        else (0, 0)
    )
    ox, oy = offset
    loadout = world.loadout
    if loadout.trail_colors and len(world.trail) > 2:
        points = [(x + ox, y + oy + 4) for x, y in world.trail]
        draw_ribbon(target, points, loadout.trail_colors)
    for coin in world.items:
        draw_coin(target, coin.x + ox, coin.y + oy, coin.radius, coin.phase)
    for rock in world.hazards:
        draw_hazard(target, rock)
    for p in world.particles:
        fade = p.life / p.max_life
        color = tuple(int(c * (0.35 + 0.65 * fade)) for c in p.color)
        pygame.draw.circle(target, color, (p.x + ox, p.y + oy), max(1.0, p.size * fade))
    if loadout.magnet:
        pulse = (frame % 60) / 60
        pygame.draw.circle(
            target, (120, 60, 90), (world.x + ox, world.y + oy), 40 + pulse * 60, width=1
        )
    if loadout.dragon:
        angle = frame * 0.06
        ex, ey = world.x + math.cos(angle) * 34 + ox, world.y + math.sin(angle) * 20 + oy
        pygame.draw.ellipse(target, (110, 200, 140), (ex - 6, ey - 8, 12, 16))
    blink = world.grace_frames > 0 and (world.grace_frames // 5) % 2 == 0
    if not blink and not (world.over and world.end_reason == "destroyed"):
        tilt = max(-0.35, min(0.35, world.vx / 900))
        draw_ship(
            target,
            world.x + ox,
            world.y + oy,
            color=loadout.ship_color,
            tilt=tilt,
            flame=frame if world.vy < 50 else 0,
            gold=loadout.gold,
        )
    if world.shield_frames > 0:
        fading = world.shield_frames < 90 and (world.shield_frames // 6) % 2 == 0
        if not fading:
            bubble = pygame.Surface((80, 80), pygame.SRCALPHA)
            pygame.draw.circle(bubble, (100, 180, 255, 70), (40, 40), 34)
            pygame.draw.circle(bubble, (170, 220, 255, 220), (40, 40), 34, width=2)
            target.blit(bubble, (world.x - 40 + ox, world.y - 40 + oy))
    if world.slash_frames > 0:
        spread = 1 - world.slash_frames / 14
        radius = 30 + spread * 90
        box = pygame.Rect(0, 0, radius * 2, radius * 2)
        box.center = (round(world.x + ox), round(world.y + oy))
        pygame.draw.arc(target, (235, 240, 255), box, frame * 0.5, frame * 0.5 + 4.2, 3)
    for text in world.texts:
        fonts.draw(
            target,
            text.text,
            (text.x + ox, text.y + oy),
            size=22,
            color=text.color,
            anchor="center",
        )
    return offset


def draw_ribbon(
    target: pygame.Surface,
    points: Sequence[tuple[float, float]],
    colors: Sequence[Color],
    *,
    band: int = 4,
) -> None:
    """A rainbow ribbon along ``points`` (oldest first), thinning towards its tail."""
    count = len(colors)
    for i in range(1, len(points)):
        (x1, y1), (x2, y2) = points[i - 1], points[i]
        taper = i / len(points)
        width = max(1, round(band * taper))
        for k, color in enumerate(colors):
            offset = (k - (count - 1) / 2) * band * taper
            pygame.draw.line(target, color, (x1 + offset, y1), (x2 + offset, y2), width + 1)


def spinner(target: pygame.Surface, center: tuple[float, float], frame: int, color: Color) -> None:
    """A small busy indicator: dots chasing round a circle."""
    for i in range(8):
        angle = (frame * 0.15) + i * math.tau / 8
        shade = tuple(int(c * (0.25 + 0.75 * i / 7)) for c in color)
        pygame.draw.circle(
            target, shade, (center[0] + math.cos(angle) * 8, center[1] + math.sin(angle) * 8), 2.2
        )


def key_cap(
    target: pygame.Surface, fonts: Fonts, label: str, topleft: tuple[int, int]
) -> pygame.Rect:
    """A keyboard key picture with ``label`` on it (for the controls help)."""
    text = fonts.render(label, 20, (20, 22, 40))
    rect = pygame.Rect(topleft, (max(26, text.get_width() + 12), 24))
    pygame.draw.rect(target, (200, 205, 225), rect, border_radius=5)
    pygame.draw.rect(target, (120, 125, 150), rect, width=2, border_radius=5)
    target.blit(text, text.get_rect(center=rect.center))
    return rect


def arrow(
    target: pygame.Surface,
    center: tuple[float, float],
    direction: str,
    color: Color,
    size: float = 7,
) -> None:
    """A small triangle pointing ``up``, ``down``, ``left`` or ``right``."""
    x, y = center
    points: Sequence[tuple[float, float]] = {
        "up": [(x, y - size), (x + size, y + size * 0.6), (x - size, y + size * 0.6)],
        "down": [(x, y + size), (x + size, y - size * 0.6), (x - size, y - size * 0.6)],
        "left": [(x - size, y), (x + size * 0.6, y - size), (x + size * 0.6, y + size)],
        "right": [(x + size, y), (x - size * 0.6, y - size), (x - size * 0.6, y + size)],
    }[direction]
    pygame.draw.polygon(target, color, points)
