"""The screens: loading, hangar (title), a round, its results, and the shop."""

from __future__ import annotations

import math
import uuid

import pygame

from shopkeep import Item, Money

from . import rules
from .app import HEIGHT, WIDTH, App, Scene, clicked, on_key
from .backend import BackendError, RoundPayout
from .draw import (
    PALETTE,
    arrow,
    currency_icon,
    draw_button,
    draw_heart,
    draw_item_icon,
    draw_panel,
    draw_ribbon,
    draw_ship,
    draw_stars,
    draw_world,
    key_cap,
    spinner,
    strike_through,
)
from .session import StoreSession, countdown
from .world import Controls, Round, autopilot

__all__ = ["LoadingScene", "PlayScene", "ResultsScene", "ShopScene", "TitleScene"]

LEFT_KEYS = (pygame.K_LEFT, pygame.K_a)
RIGHT_KEYS = (pygame.K_RIGHT, pygame.K_d)
UP_KEYS = (pygame.K_UP, pygame.K_w)
DOWN_KEYS = (pygame.K_DOWN, pygame.K_s)
CONFIRM_KEYS = (pygame.K_RETURN, pygame.K_KP_ENTER)
CURRENCY_ORDER = ("COINS", "GEMS", "USD")


def draw_balances(app: App, target: pygame.Surface, right: int, y: int) -> None:
    """The player's balances as chips ending at ``right``: every currency, via Money."""
    session = app.session
    if session is None:
        return
    codes = [c.code for c in session.catalog.currencies] if session.catalog else []
    codes = sorted(codes, key=lambda c: CURRENCY_ORDER.index(c) if c in CURRENCY_ORDER else 9)
    x = right
    for code in reversed(codes):
        minor = session.balance(code)
        text = "..." if minor is None else str(session.money(code, minor))
        surface = app.fonts.render(text, 26, PALETTE["text"])
        rect = pygame.Rect(0, 0, surface.get_width() + 44, 34)
        rect.topright = (x, y)
        draw_panel(target, rect, radius=17, alpha=220)
        currency_icon(target, code, (rect.left + 18, rect.centery), 10)
        target.blit(surface, surface.get_rect(midleft=(rect.left + 34, rect.centery)))
        x = rect.left - 8


def draw_title(app: App, target: pygame.Surface, y: int, size: int = 78) -> None:
    """The game's name with a little shine."""
    app.fonts.draw(
        target,
        "STAR SKIPPER",
        (WIDTH // 2, y),
        size=size,
        color=PALETTE["gold"],
        anchor="midtop",
        shadow=True,
    )


class LoadingScene:
    """While the private store starts (PostgreSQL's first start takes a while)."""

    def __init__(self, app: App) -> None:
        self.app = app

    def handle(self, event: pygame.event.Event) -> None:
        if on_key(event, pygame.K_ESCAPE):
            self.app.running = False

    def update(self) -> None:
        self.app.stars.step(0.5)

    def draw(self, target: pygame.Surface) -> None:
        app = self.app
        draw_stars(target, app.stars)
        draw_title(app, target, 150)
        launching = app.launching
        error = launching.error if launching else None
        if error:
            app.fonts.draw(
                target,
                "The store could not start",
                (WIDTH // 2, 300),
                size=32,
                color=PALETTE["error"],
                anchor="midtop",
            )
            for i, line in enumerate(error.splitlines()[-6:]):
                app.fonts.draw(
                    target,
                    line[:110],
                    (WIDTH // 2, 345 + i * 22),
                    size=20,
                    color=PALETTE["dim"],
                    anchor="midtop",
                )
            app.fonts.draw(target, "Esc to quit", (WIDTH // 2, 520), size=24, anchor="midtop")
            return
        status = launching.status if launching else "Connecting..."
        spinner(target, (WIDTH // 2, 310), app.frame_no, PALETTE["accent"])
        app.fonts.draw(target, status, (WIDTH // 2, 340), size=28, anchor="midtop")


class TitleScene:
    """The hangar: your ship as the store has equipped it, and how to play."""

    toast_anchor = ("top", 172)

    def __init__(self, app: App) -> None:
        self.app = app

    def handle(self, event: pygame.event.Event) -> None:
        target = clicked(self.app, event)
        if on_key(event, pygame.K_SPACE, *CONFIRM_KEYS) or target == "play":
            self.app.switch(PlayScene(self.app))
        elif on_key(event, pygame.K_TAB, pygame.K_b) or target == "shop":
            self.app.switch(ShopScene(self.app))
        elif on_key(event, pygame.K_ESCAPE):
            self.app.running = False

    def update(self) -> None:
        self.app.stars.step(1.0)

    def draw(self, target: pygame.Surface) -> None:
        app = self.app
        draw_stars(target, app.stars)
        draw_balances(app, target, WIDTH - 16, 12)
        draw_title(app, target, 70)
        app.fonts.draw(
            target,
            "catch coins, dodge rocks, spend it all in the shop",
            (WIDTH // 2, 140),
            size=26,
            color=PALETTE["dim"],
            anchor="midtop",
        )
        loadout = app.loadout()
        x = WIDTH // 2 + math.sin(app.frame_no / 40) * 60
        y = 255 + math.sin(app.frame_no / 23) * 8
        if loadout.trail_colors:
            # The ship's past positions, streaming away below it as if it flew upwards.
            frame = app.frame_no
            points = [
                (WIDTH // 2 + math.sin((frame - i) / 40) * 60, y + 26 + i * 4) for i in range(26)
            ]
            draw_ribbon(target, points[::-1], loadout.trail_colors, band=6)
        draw_ship(
            target, x, y, color=loadout.ship_color, scale=1.8, flame=app.frame_no, gold=loadout.gold
        )
        self._draw_kit(target)
        self._draw_controls(target, 400)
        play = app.hotspot("play", pygame.Rect(WIDTH // 2 - 230, 520, 220, 50))
        shop = app.hotspot("shop", pygame.Rect(WIDTH // 2 + 10, 520, 220, 50))
        draw_button(target, app.fonts, play, "Launch  [Space]", color=PALETTE["gold"], hot=True)
        draw_button(target, app.fonts, shop, "Shop  [Tab]", color=PALETTE["accent"])

    def _draw_kit(self, target: pygame.Surface) -> None:
        session = self.app.session
        if session is None or session.inventory is None:
            return
        owned = [e for e in session.inventory.items if e.quantity > 0]
        x = 30
        self.app.fonts.draw(target, "Your kit", (x, 190), size=24, color=PALETTE["dim"])
        if not owned:
            self.app.fonts.draw(target, "nothing yet:", (x, 222), size=22)
            self.app.fonts.draw(target, "visit the shop!", (x, 244), size=22)
        for i, entry in enumerate(owned[:8]):
            item = session.item(entry.sku)
            rect = pygame.Rect(x, 220 + i * 34, 30, 30)
            draw_item_icon(target, entry.sku, rect, item.metadata if item else {})
            name = item.name if item else entry.sku
            label = name if (item and item.kind == "durable") else f"{name} x{entry.quantity}"
            self.app.fonts.draw(target, label, (x + 40, rect.centery), size=22, anchor="midleft")

    def _draw_controls(self, target: pygame.Surface, y: int) -> None:
        app = self.app
        x = WIDTH // 2 - 270
        rows = [
            (["W", "A", "S", "D"], "or arrows: fly"),
            (["1"], "shield potion (10 s, blocks rocks)"),
            (["2"], "health potion (+1 life)   [Space] sword slash, if you own one"),
        ]
        for i, (keys, text) in enumerate(rows):
            cx = x
            for key in keys:
                cx = key_cap(target, app.fonts, key, (cx, y + i * 32)).right + 4
            app.fonts.draw(
                target,
                text,
                (cx + 8, y + i * 32 + 12),
                size=22,
                color=PALETTE["dim"],
                anchor="midleft",
            )


class PlayScene:
    """One round: fly, collect, survive; consumables are used through the store."""

    toast_anchor = ("top", 52)

    def __init__(self, app: App) -> None:
        self.app = app
        self.round_id = uuid.uuid4().hex
        self.world = Round(
            width=WIDTH,
            height=HEIGHT,
            round_seconds=app.options.round_seconds,
            seed=app.next_seed(),
            loadout=app.loadout(),
        )
        self.slash = False

    @property
    def session(self) -> StoreSession:
        """The store session (a round only starts once it exists)."""
        assert self.app.session is not None
        return self.app.session

    def handle(self, event: pygame.event.Event) -> None:
        if on_key(event, pygame.K_1, pygame.K_q):
            self.use_shield()
        elif on_key(event, pygame.K_2, pygame.K_e):
            self.use_potion()
        elif on_key(event, pygame.K_SPACE):
            self.slash = True
        elif on_key(event, pygame.K_ESCAPE):
            self.world.end("quit")

    def use_shield(self) -> None:
        """[1]: drink a shield potion, if the inventory has one."""
        if self.session.use("shield"):
            self.world.raise_shield()
        else:
            self.session.notify("No shield potions: buy some in the shop", "warn")

    def use_potion(self) -> None:
        """[2]: drink a health potion (only when a life is missing, so none is wasted)."""
        if self.world.lives >= rules.MAX_LIVES:
            self.session.notify("Your lives are full", "info")
        elif self.session.use("potion"):
            self.world.heal()
        else:
            self.session.notify("No health potions: buy some in the shop", "warn")

    def update(self) -> None:
        app = self.app
        world = self.world
        if app.options.autopilot:
            controls = autopilot(world)
        else:
            held = app.held
            dx = float(any(k in held for k in RIGHT_KEYS)) - float(
                any(k in held for k in LEFT_KEYS)
            )
            dy = float(any(k in held for k in DOWN_KEYS)) - float(any(k in held for k in UP_KEYS))
            controls = Controls(dx, dy, self.slash)
        self.slash = False
        events = world.step(controls)
        app.stars.step(2.0)
        if "out_of_lives" in events and self.session.use("extra_life"):
            world.revive()
            self.session.notify("Saved by an extra life!", "ok")
        if world.over:
            self.session.bank_round(self.round_id, world.coins)
            app.switch(ResultsScene(app, world, self.round_id))

    def draw(self, target: pygame.Surface) -> None:
        app = self.app
        world = self.world
        draw_world(target, world, app.stars, app.fonts, frame=app.frame_no)
        self._draw_hud(target)
        if world.frame < 75:
            alpha = 255 if world.frame < 45 else int(255 * (75 - world.frame) / 30)
            text = app.fonts.render("GO!", 96, PALETTE["gold"])
            text.set_alpha(alpha)
            target.blit(text, text.get_rect(center=(WIDTH // 2, HEIGHT // 2 - 40)))

    def _draw_hud(self, target: pygame.Surface) -> None:
        app = self.app
        world = self.world
        bar = pygame.Surface((WIDTH, 44), pygame.SRCALPHA)
        bar.fill((8, 10, 26, 200))
        target.blit(bar, (0, 0))
        currency_icon(target, "COINS", (26, 22), 12)
        app.fonts.draw(
            target, str(world.coins), (46, 22), size=36, color=PALETTE["gold"], anchor="midleft"
        )
        # The clock: a bar that empties, and the seconds left.
        track = pygame.Rect(WIDTH // 2 - 150, 16, 300, 12)
        pygame.draw.rect(target, (40, 44, 80), track, border_radius=6)
        filled = track.copy()
        filled.width = int(track.width * world.frames_left / world.total_frames)
        urgent = world.seconds_left <= 10
        pygame.draw.rect(
            target, PALETTE["error"] if urgent else PALETTE["accent"], filled, border_radius=6
        )
        minutes, seconds = divmod(world.seconds_left, 60)
        app.fonts.draw(
            target, f"{minutes}:{seconds:02d}", (track.right + 14, 22), size=28, anchor="midleft"
        )
        for i in range(rules.MAX_LIVES):
            color = (255, 90, 120) if i < world.lives else (60, 50, 70)
            draw_heart(target, WIDTH - 26 - i * 30, 22, 22, color)
        self._draw_kit_bar(target)

    def _draw_kit_bar(self, target: pygame.Surface) -> None:
        app = self.app
        session = self.session
        x = 12
        slots = [("1", "shield", "Shield"), ("2", "potion", "Potion")]
        for key, sku, name in slots:
            count = session.owned(sku)
            rect = pygame.Rect(x, HEIGHT - 46, 150, 36)
            draw_panel(target, rect, alpha=200, border=PALETTE["border"] if count else (50, 50, 70))
            key_cap(target, app.fonts, key, (rect.left + 6, rect.top + 6))
            draw_item_icon(target, sku, pygame.Rect(rect.left + 36, rect.top + 4, 28, 28), {})
            color = PALETTE["text"] if count else PALETTE["dim"]
            app.fonts.draw(
                target,
                f"{name} x{count}",
                (rect.left + 68, rect.centery),
                size=20,
                color=color,
                anchor="midleft",
            )
            x = rect.right + 8
        lives = session.owned("extra_life")
        if lives:
            rect = pygame.Rect(x, HEIGHT - 46, 130, 36)
            draw_panel(target, rect, alpha=200)
            draw_heart(target, rect.left + 20, rect.centery, 20, (255, 90, 120))
            app.fonts.draw(
                target, f"Extra x{lives}", (rect.left + 38, rect.centery), size=20, anchor="midleft"
            )
            x = rect.right + 8
        if self.world.loadout.sword:
            rect = pygame.Rect(x, HEIGHT - 46, 130, 36)
            draw_panel(target, rect, alpha=200)
            ready = self.world.slash_cooldown == 0
            draw_item_icon(target, "sword", pygame.Rect(rect.left + 4, rect.top + 4, 28, 28), {})
            app.fonts.draw(
                target,
                "Space" if ready else "...",
                (rect.left + 40, rect.centery),
                size=20,
                color=PALETTE["text"] if ready else PALETTE["dim"],
                anchor="midleft",
            )


class ResultsScene:
    """What the round earned, and whether the studio backend has banked it yet."""

    toast_anchor = ("bottom", HEIGHT - 4)

    def __init__(self, app: App, world: Round, round_id: str) -> None:
        self.app = app
        self.world = world
        self.round_id = round_id
        self.frames = 0

    def handle(self, event: pygame.event.Event) -> None:
        target = clicked(self.app, event)
        if on_key(event, *CONFIRM_KEYS, pygame.K_TAB, pygame.K_b) or target == "shop":
            self.app.switch(ShopScene(self.app))
        elif on_key(event, pygame.K_SPACE) or target == "play":
            self.app.switch(PlayScene(self.app))
        elif on_key(event, pygame.K_ESCAPE):
            self.app.switch(TitleScene(self.app))

    def update(self) -> None:
        self.frames += 1
        self.app.stars.step(0.7)

    def draw(self, target: pygame.Surface) -> None:
        app = self.app
        world = self.world
        draw_stars(target, app.stars)
        draw_balances(app, target, WIDTH - 16, 12)
        headline = {"time": "TIME UP!", "destroyed": "SHIP LOST!", "quit": "ROUND ENDED"}
        app.fonts.draw(
            target,
            headline.get(world.end_reason, "ROUND OVER"),
            (WIDTH // 2, 80),
            size=72,
            color=PALETTE["gold"],
            anchor="midtop",
            shadow=True,
        )
        panel = pygame.Rect(WIDTH // 2 - 260, 170, 520, 300)
        draw_panel(target, panel)
        # Count the coins up for a moment: a small reward for the eye.
        shown = min(world.coins, self.frames * max(1, world.coins // 40 + 1))
        currency_icon(target, "COINS", (panel.centerx - 70, panel.top + 60), 22)
        app.fonts.draw(
            target,
            str(shown),
            (panel.centerx - 38, panel.top + 60),
            size=72,
            color=PALETTE["gold"],
            anchor="midleft",
        )
        app.fonts.draw(
            target,
            "coins collected",
            (panel.centerx, panel.top + 100),
            size=24,
            color=PALETTE["dim"],
            anchor="midtop",
        )
        stats = (
            f"{world.coins_caught} of {world.coins_spawned} coins caught  -  "
            f"{world.hits} hits  -  {world.blocked} blocked"
        )
        app.fonts.draw(
            target,
            stats,
            (panel.centerx, panel.top + 134),
            size=22,
            color=PALETTE["dim"],
            anchor="midtop",
        )
        self._draw_bank(target, panel)
        self._draw_next_upgrade(target, panel)
        play = app.hotspot("play", pygame.Rect(WIDTH // 2 - 230, 500, 220, 50))
        shop = app.hotspot("shop", pygame.Rect(WIDTH // 2 + 10, 500, 220, 50))
        draw_button(target, app.fonts, play, "Play again  [Space]", color=PALETTE["gold"])
        draw_button(target, app.fonts, shop, "Shop  [Enter]", color=PALETTE["accent"], hot=True)

    def _draw_next_upgrade(self, target: pygame.Surface, panel: pygame.Rect) -> None:
        # Something to play for: the cheapest upgrade not owned yet that coins can buy.
        session = self.app.session
        if session is None or session.catalog is None:
            return
        now = self.app.now()
        offers = [
            (price, item)
            for item in session.catalog.items
            if item.kind == "durable" and not session.owned(item.sku) and item.on_sale(now)
            for price in item.prices
            if price.currency == "COINS"
        ]
        if not offers:
            return
        price, item = min(offers, key=lambda offer: offer[0].minor)
        balance = session.balance("COINS") or 0
        if balance >= price.minor:
            text, color = f"You can afford the {item.name} ({price}) now!", PALETTE["gold"]
        else:
            short = session.money("COINS", price.minor - balance)
            text, color = f"Next upgrade: {item.name}, {short} to go", PALETTE["dim"]
        draw_item_icon(
            target, item.sku, pygame.Rect(panel.left + 30, panel.top + 250, 30, 30), item.metadata
        )
        self.app.fonts.draw(
            target, text, (panel.left + 70, panel.top + 265), size=24, color=color, anchor="midleft"
        )

    def _draw_bank(self, target: pygame.Surface, panel: pygame.Rect) -> None:
        app = self.app
        session = app.session
        assert session is not None
        payout = session.payouts.get(self.round_id)
        waiting = any(o.round_id == self.round_id for o in session.round_outbox)
        y = panel.top + 190
        if isinstance(payout, RoundPayout):
            coins = session.money("COINS", payout.coins_granted)
            line = f"Banked +{coins}"
            if payout.balance is not None:
                line += f"  -  balance {session.money('COINS', payout.balance)}"
            app.fonts.draw(
                target, line, (panel.centerx, y), size=30, color=PALETTE["ok"], anchor="midtop"
            )
            if payout.capped:
                app.fonts.draw(
                    target,
                    "(capped at what one round can yield)",
                    (panel.centerx, y + 36),
                    size=22,
                    color=PALETTE["warn"],
                    anchor="midtop",
                )
        elif isinstance(payout, BackendError) and not waiting:
            app.fonts.draw(
                target,
                f"Not banked: {payout.message}",
                (panel.centerx, y),
                size=26,
                color=PALETTE["error"],
                anchor="midtop",
            )
        elif self.world.coins == 0:
            app.fonts.draw(
                target,
                "Nothing to bank this time",
                (panel.centerx, y),
                size=26,
                color=PALETTE["dim"],
                anchor="midtop",
            )
        else:
            text = "Banking with the studio backend..."
            if isinstance(payout, BackendError):
                text = "Bank offline - retrying, your coins are safe"
            spinner(target, (panel.centerx - 200, y + 12), app.frame_no, PALETTE["accent"])
            app.fonts.draw(target, text, (panel.centerx + 10, y), size=26, anchor="midtop")


class ShopScene:
    """The live catalog: prices, balances, ownership, limits, the drops; buy with keys or mouse."""

    toast_anchor = ("bottom", HEIGHT - 4)
    ROW_TOP = 66
    ROW_HEIGHT = 41
    LIST_WIDTH = 556

    def __init__(self, app: App) -> None:
        self.app = app
        self.index = 0
        self.currency: dict[str, str] = {}
        # The promo code being typed (None: the code prompt is closed).
        self.code: str | None = None
        session = self.session
        session.watch_stock = True
        session.refresh_catalog()
        session.refresh_wallet()
        session.refresh_inventory()
        session.refresh_ledger()

    @property
    def session(self) -> StoreSession:
        """The store session."""
        assert self.app.session is not None
        return self.app.session

    @property
    def items(self) -> list[Item]:
        """The catalog's items in catalog order (empty while loading)."""
        catalog = self.session.catalog
        return list(catalog.items) if catalog is not None else []

    @property
    def selected(self) -> Item | None:
        """The item the cursor is on."""
        items = self.items
        if not items:
            return None
        self.index = max(0, min(self.index, len(items) - 1))
        return items[self.index]

    def list_price_of(self, item: Item) -> Money:
        """The list price in the currency the player has picked (the first, unless they chose)."""
        chosen = self.currency.get(item.sku)
        for price in item.prices:
            if price.currency == chosen:
                return price
        return item.prices[0]

    def price_of(self, item: Item) -> Money:
        """What this player pays for ``item`` in the picked currency: its own price (an
        offer's, or the list price), the one a purchase sends as the expected price."""
        return item.my_price(self.list_price_of(item).currency).price

    def select(self, sku: str) -> None:
        """Put the cursor on ``sku``."""
        for i, item in enumerate(self.items):
            if item.sku == sku:
                self.index = i

    def leave(self, scene: Scene) -> None:
        """Stop watching stock and show ``scene``."""
        self.session.watch_stock = False
        self.app.switch(scene)

    def handle_code(self, event: pygame.event.Event) -> None:
        """Typing a promo code: letters, digits, - and _; Enter redeems it, Esc closes."""
        assert self.code is not None
        if event.type == pygame.TEXTINPUT:
            typed = "".join(c for c in event.text.upper() if c.isalnum() or c in "-_")
            self.code = (self.code + typed)[:32]
        elif on_key(event, pygame.K_BACKSPACE):
            self.code = self.code[:-1]
        elif on_key(event, *CONFIRM_KEYS) or clicked(self.app, event) == "redeem":
            if self.session.redeem(self.code):
                self.code = None
        elif on_key(event, pygame.K_ESCAPE):
            self.code = None

    def handle(self, event: pygame.event.Event) -> None:
        if self.code is not None:
            self.handle_code(event)
            return
        item = self.selected
        target = clicked(self.app, event)
        if on_key(event, pygame.K_c) or target == "code":
            self.code = ""
        elif on_key(event, *UP_KEYS):
            self.index -= 1
        elif on_key(event, *DOWN_KEYS):
            self.index += 1
        elif on_key(event, *LEFT_KEYS, *RIGHT_KEYS) and item is not None and len(item.prices) > 1:
            codes = [p.currency for p in item.prices]
            step = -1 if event.key in LEFT_KEYS else 1
            current = codes.index(self.list_price_of(item).currency)
            self.currency[item.sku] = codes[(current + step) % len(codes)]
        elif (on_key(event, *CONFIRM_KEYS) or target == "buy") and item is not None:
            self.buy(item)
        elif on_key(event, pygame.K_SPACE, pygame.K_p) or target == "play":
            self.leave(PlayScene(self.app))
        elif on_key(event, pygame.K_u) or target == "topup":
            from .topup import TopUpScene  # it comes back here: imported when used

            self.leave(TopUpScene(self.app))
        elif on_key(event, pygame.K_ESCAPE, pygame.K_TAB) or target == "back":
            self.leave(TitleScene(self.app))
        elif target is not None and target.startswith("row:"):
            self.select(target[4:])
        elif target is not None and target.startswith("price:") and item is not None:
            self.currency[item.sku] = target[6:]

    def buy(self, item: Item) -> None:
        """Buy one ``item`` at the price shown (the store refuses if it has changed)."""
        self.session.buy(item.sku, expected=self.price_of(item))

    def update(self) -> None:
        self.app.stars.step(0.3)

    # --- drawing --------------------------------------------------------------------------------

    def draw(self, target: pygame.Surface) -> None:
        app = self.app
        draw_stars(target, app.stars)
        app.fonts.draw(target, "SHOP", (20, 12), size=48, color=PALETTE["gold"], shadow=True)
        if self.session.player_id:
            app.fonts.draw(
                target,
                self.session.player_id,
                (136, 30),
                size=22,
                color=PALETTE["dim"],
                anchor="midleft",
            )
        draw_balances(app, target, WIDTH - 16, 12)
        items = self.items
        if not items:
            spinner(target, (WIDTH // 2 - 100, 300), app.frame_no, PALETTE["accent"])
            app.fonts.draw(
                target, "Loading the store...", (WIDTH // 2 - 80, 300), size=28, anchor="midleft"
            )
        for i, item in enumerate(items[:12]):
            self._draw_row(target, i, item)
        selected = self.selected
        if selected is not None:
            self._draw_details(target, selected)
        self._draw_footer(target)

    def _status(self, item: Item) -> tuple[str, tuple[int, int, int]]:
        session = self.session
        state = session.buying.get(item.sku)
        if state == "sending":
            return "buying...", PALETTE["accent"]
        if state == "pending":
            return "retrying...", PALETTE["warn"]
        owned = session.owned(item.sku)
        if item.kind == "durable" and owned:
            return "OWNED", PALETTE["ok"]
        now = self.app.now()
        if item.available_from is not None and now < item.available_from:
            return f"opens {countdown(item.available_from, now)}", PALETTE["warn"]
        if item.available_until is not None and now >= item.available_until:
            return "ended", PALETTE["dim"]
        if item.stock is not None:
            left = session.stock.get(item.sku)
            if left == 0:
                return "SOLD OUT", PALETTE["error"]
            if left is not None:
                return f"{left} left", PALETTE["warn"]
        if owned:
            return f"have {owned}", PALETTE["dim"]
        return "", PALETTE["dim"]

    def _draw_row(self, target: pygame.Surface, i: int, item: Item) -> None:
        app = self.app
        session = self.session
        rect = pygame.Rect(
            16, self.ROW_TOP + i * self.ROW_HEIGHT, self.LIST_WIDTH, self.ROW_HEIGHT - 5
        )
        app.hotspot(f"row:{item.sku}", rect)
        chosen = i == self.index
        hover = rect.collidepoint(app.mouse)
        draw_panel(
            target,
            rect,
            color=PALETTE["panel_hi"] if chosen or hover else PALETTE["panel"],
            border=PALETTE["gold"] if chosen else PALETTE["border"],
            radius=8,
            alpha=225,
        )
        draw_item_icon(
            target, item.sku, pygame.Rect(rect.left + 6, rect.top + 3, 30, 30), item.metadata
        )
        app.fonts.draw(target, item.name, (rect.left + 46, rect.centery), size=24, anchor="midleft")
        status, color = self._status(item)
        if status:
            app.fonts.draw(
                target,
                status,
                (rect.left + 250, rect.centery),
                size=20,
                color=color,
                anchor="midleft",
            )
        # The player's own prices, right-aligned, red when the balance cannot cover them; an
        # offer's price in gold, with the list price struck through beside it.
        x = rect.right - 10
        for listed in reversed(item.prices):
            offered = item.my_price(listed.currency)
            price = offered.price
            balance = session.balance(price.currency)
            short = balance is not None and balance < price.minor
            text = str(price).rsplit(" ", 1)[0]
            shade = PALETTE["gold"] if offered.offer_id is not None else PALETTE["text"]
            surface = app.fonts.render(text, 24, PALETTE["error"] if short else shade)
            target.blit(surface, surface.get_rect(midright=(x, rect.centery)))
            x -= surface.get_width() + 6
            currency_icon(target, price.currency, (x - 8, rect.centery), 8)
            x -= 26
            if offered.offer_id is not None:
                was = str(listed).rsplit(" ", 1)[0]
                x = strike_through(target, app.fonts, was, x, rect.centery) - 4

    def _draw_details(self, target: pygame.Surface, item: Item) -> None:
        app = self.app
        session = self.session
        fonts = app.fonts
        panel = pygame.Rect(584, self.ROW_TOP, WIDTH - 600, 488)
        draw_panel(target, panel)
        draw_item_icon(
            target, item.sku, pygame.Rect(panel.left + 14, panel.top + 14, 60, 60), item.metadata
        )
        fonts.draw(target, item.name, (panel.left + 86, panel.top + 20), size=32)
        tags = ", ".join([item.kind, *[t for t in item.tags if t != item.kind]])
        fonts.draw(target, tags, (panel.left + 86, panel.top + 52), size=20, color=PALETTE["dim"])
        y = panel.top + 88
        lines = fonts.wrap(item.description or self._effect(item), 22, panel.width - 28)
        for line in lines[:3]:
            fonts.draw(target, line, (panel.left + 14, y), size=22)
            y += 22
        if item.description and self._effect(item):
            fonts.draw(
                target, self._effect(item), (panel.left + 14, y), size=22, color=PALETTE["accent"]
            )
            y += 22
        if item.contents:
            parts = [
                str(c) if isinstance(c, Money) else f"{c.quantity} x {self._name(c.sku)}"
                for c in item.contents
            ]
            for line in fonts.wrap("Contains: " + ", ".join(parts), 22, panel.width - 28)[:2]:
                fonts.draw(target, line, (panel.left + 14, y), size=22, color=PALETTE["gold"])
                y += 22
        y += 6
        for line, color in self._facts(item):
            fonts.draw(target, line, (panel.left + 14, y), size=22, color=color)
            y += 24
        if item.stock is not None:
            left = session.stock.get(item.sku)
            bar = pygame.Rect(panel.left + 14, y + 2, panel.width - 28, 10)
            pygame.draw.rect(target, (40, 44, 80), bar, border_radius=5)
            if left:
                fill = bar.copy()
                fill.width = max(4, bar.width * left // item.stock)
                pygame.draw.rect(target, PALETTE["warn"], fill, border_radius=5)
        self._draw_buy(target, item, panel)
        self._draw_ledger(target, panel)

    def _effect(self, item: Item) -> str:
        return {
            "shield": "In play: press 1 to raise it.",
            "potion": "In play: press 2 to heal.",
            "extra_life": "In play: saves you when your ship is lost.",
            "magnet": "In play: coins fly to you.",
            "ship_gold": "Changes your ship's colour.",
            "trail_rainbow": "A rainbow follows your ship.",
            "sword": "In play: Space slashes nearby rocks.",
            "dragon_egg": "A little egg circles your ship.",
        }.get(item.sku, "")

    def _name(self, sku: str) -> str:
        item = self.session.item(sku)
        return item.name if item else sku

    def _facts(self, item: Item) -> list[tuple[str, tuple[int, int, int]]]:
        session = self.session
        now = self.app.now()
        facts: list[tuple[str, tuple[int, int, int]]] = []
        owned = session.owned(item.sku)
        if item.kind == "durable":
            facts.append(
                (
                    "You own it" if owned else "Yours forever once bought",
                    PALETTE["ok"] if owned else PALETTE["dim"],
                )
            )
        else:
            facts.append((f"You have {owned}", PALETTE["dim"]))
        if item.per_player_limit is not None and item.kind != "durable":
            facts.append((f"Limit: {item.per_player_limit} per player", PALETTE["warn"]))
        elif item.per_player_limit is not None and item.stock is not None:
            facts.append(("Limit: one per player", PALETTE["warn"]))
        if item.available_from is not None and now < item.available_from:
            facts.append((f"Drop opens in {countdown(item.available_from, now)}", PALETTE["warn"]))
        elif item.available_until is not None and now < item.available_until:
            facts.append((f"Drop ends in {countdown(item.available_until, now)}", PALETTE["warn"]))
        elif item.available_until is not None:
            facts.append(("The drop has ended", PALETTE["dim"]))
        if item.stock is not None:
            left = session.stock.get(item.sku)
            text = "..." if left is None else f"{left} of {item.stock} left"
            facts.append((text, PALETTE["error"] if left == 0 else PALETTE["text"]))
        return facts

    def _draw_buy(self, target: pygame.Surface, item: Item, panel: pygame.Rect) -> None:
        app = self.app
        session = self.session
        chosen = self.price_of(item)
        y = panel.top + 262
        if len(item.prices) > 1:
            x = panel.left + 14
            arrow(target, (x + 6, y + 16), "left", PALETTE["dim"])
            x += 18
            for listed in item.prices:
                price = item.my_price(listed.currency).price
                rect = app.hotspot(f"price:{price.currency}", pygame.Rect(x, y, 140, 32))
                active = price.currency == chosen.currency
                draw_panel(
                    target,
                    rect,
                    color=PALETTE["panel_hi"] if active else PALETTE["panel"],
                    border=PALETTE["gold"] if active else PALETTE["border"],
                    radius=16,
                )
                currency_icon(target, price.currency, (rect.left + 18, rect.centery), 9)
                app.fonts.draw(
                    target, str(price), (rect.left + 32, rect.centery), size=22, anchor="midleft"
                )
                x = rect.right + 8
            arrow(target, (x + 4, y + 16), "right", PALETTE["dim"])
        y += 44
        label, enabled, color = self._buy_label(item, chosen)
        button = app.hotspot("buy", pygame.Rect(panel.left + 14, y, panel.width - 28, 50))
        draw_button(
            target, app.fonts, button, label, color=color, enabled=enabled, hot=enabled, size=28
        )
        balance = session.balance(chosen.currency)
        if balance is not None and balance < chosen.minor and enabled:
            short = session.money(chosen.currency, chosen.minor - balance)
            app.fonts.draw(
                target,
                f"You are {short} short",
                (button.centerx, button.bottom + 6),
                size=20,
                color=PALETTE["error"],
                anchor="midtop",
            )

    def _buy_label(self, item: Item, price: Money) -> tuple[str, bool, tuple[int, int, int]]:
        session = self.session
        state = session.buying.get(item.sku)
        if state == "sending":
            return "Buying...", False, PALETTE["accent"]
        if state == "pending":
            return "Waiting for the store...", False, PALETTE["warn"]
        if item.kind == "durable" and session.owned(item.sku):
            return "Owned", False, PALETTE["ok"]
        now = self.app.now()
        if item.available_from is not None and now < item.available_from:
            return f"Opens in {countdown(item.available_from, now)}", False, PALETTE["warn"]
        if item.stock is not None and session.stock.get(item.sku) == 0:
            # Still pressable: the store has the last word (stock can come back on restock).
            return "Sold out", True, (150, 150, 175)
        listed = self.list_price_of(item)
        if listed != price:
            return f"Buy for {price} (was {listed})  [Enter]", True, PALETTE["gold"]
        return f"Buy for {price}  [Enter]", True, PALETTE["gold"]

    def _draw_ledger(self, target: pygame.Surface, panel: pygame.Rect) -> None:
        app = self.app
        session = self.session
        y = panel.top + 392
        app.fonts.draw(
            target, "Recent activity", (panel.left + 14, y), size=20, color=PALETTE["dim"]
        )
        y += 20
        for entry in session.ledger[:4]:
            money = session.money(entry.currency, entry.delta)
            sign = "+" if entry.delta > 0 else ""
            color = PALETTE["ok"] if entry.delta > 0 else PALETTE["text"]
            app.fonts.draw(target, f"{sign}{money}", (panel.left + 14, y), size=20, color=color)
            app.fonts.draw(
                target,
                entry.kind,
                (panel.right - 14, y),
                size=20,
                color=PALETTE["dim"],
                anchor="topright",
            )
            y += 18

    def _draw_footer(self, target: pygame.Surface) -> None:
        app = self.app
        y = HEIGHT - 34
        x = 16
        hints = [
            ("Up/Down", "choose"),
            ("Left/Right", "currency"),
            ("Enter", "buy"),
            ("C", "code"),
            ("Space", "play"),
            ("U", "top up"),
            ("Esc", "hangar"),
        ]
        for key, text in hints:
            x = key_cap(target, app.fonts, key, (x, y)).right + 6
            x = (
                app.fonts.draw(
                    target, text, (x, y + 12), size=20, color=PALETTE["dim"], anchor="midleft"
                ).right
                + 18
            )
        back = app.hotspot("back", pygame.Rect(WIDTH - 250, HEIGHT - 40, 110, 32))
        play = app.hotspot("play", pygame.Rect(WIDTH - 130, HEIGHT - 40, 114, 32))
        draw_button(target, app.fonts, back, "Hangar", color=(150, 150, 175), size=22)
        draw_button(target, app.fonts, play, "Play", color=PALETTE["gold"], size=22)
        if self.code is not None:
            self._draw_code_prompt(target)

    def _draw_code_prompt(self, target: pygame.Surface) -> None:
        """The promo code being typed, over the middle of the shop."""
        app = self.app
        box = pygame.Rect(WIDTH // 2 - 220, HEIGHT // 2 - 70, 440, 140)
        draw_panel(target, box, color=PALETTE["panel_hi"], border=PALETTE["gold"], radius=12)
        app.fonts.draw(
            target, "Enter a promo code", (box.centerx, box.top + 14), size=26, anchor="midtop"
        )
        cursor = "_" if (app.frame_no // 20) % 2 == 0 else " "
        app.fonts.draw(
            target,
            (self.code or "") + cursor,
            (box.centerx, box.top + 58),
            size=34,
            color=PALETTE["gold"],
            anchor="midtop",
        )
        redeem = app.hotspot("redeem", pygame.Rect(box.centerx - 70, box.bottom - 40, 140, 30))
        draw_button(target, app.fonts, redeem, "Redeem [Enter]", color=PALETTE["gold"], size=20)
