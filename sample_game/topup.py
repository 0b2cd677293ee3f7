"""The *Top up* screen: buy prepaid balance or coins with real money, from a TEST store.

It lists the catalog's real-money products the TEST store sells. Choosing one has the TEST
store "charge" (it signs an App Store transaction, as a sandbox account would) and the game
redeem it with ``StoreClient.redeem_receipt``: journaled, so a crash between the payment and
the credit is credited at the next start, once. Then the shop's 0.0150 USD tip is paid from the
prepaid USD. A banner says, on every frame, that this is a TEST store and charges nothing.
"""

from __future__ import annotations

import pygame

from shopkeep import Product

from .app import HEIGHT, WIDTH, App, clicked, on_key
from .draw import PALETTE, draw_button, draw_panel, draw_stars, key_cap, spinner
from .session import StoreSession
from .test_store import TEST_STORE_LABEL

__all__ = ["TopUpScene"]

UP_KEYS = (pygame.K_UP, pygame.K_w)
DOWN_KEYS = (pygame.K_DOWN, pygame.K_s)
CONFIRM_KEYS = (pygame.K_RETURN, pygame.K_KP_ENTER)


class TopUpScene:
    """Real-money products, paid at the TEST store and credited exactly once."""

    toast_anchor = ("bottom", HEIGHT - 4)
    ROW_TOP = 150
    ROW_HEIGHT = 64

    def __init__(self, app: App) -> None:
        self.app = app
        self.index = 0
        self.session.refresh_catalog()
        self.session.refresh_wallet()

    @property
    def session(self) -> StoreSession:
        assert self.app.session is not None
        return self.app.session

    @property
    def products(self) -> list[Product]:
        return self.session.top_up_products()

    def handle(self, event: pygame.event.Event) -> None:
        products = self.products
        target = clicked(self.app, event)
        if on_key(event, *UP_KEYS):
            self.index -= 1
        elif on_key(event, *DOWN_KEYS):
            self.index += 1
        elif (on_key(event, *CONFIRM_KEYS) or target == "pay") and products:
            self.index = max(0, min(self.index, len(products) - 1))
            self.session.top_up(products[self.index])
        elif target is not None and target.startswith("product:"):
            self.index = int(target.split(":", 1)[1])
        elif on_key(event, pygame.K_ESCAPE, pygame.K_TAB) or target == "shop":
            from .scenes import ShopScene

            self.app.switch(ShopScene(self.app))

    def update(self) -> None:
        self.app.stars.step(0.3)

    def draw(self, target: pygame.Surface) -> None:
        app = self.app
        draw_stars(target, app.stars)
        app.fonts.draw(target, "TOP UP", (20, 12), size=48, color=PALETTE["gold"], shadow=True)
        from .scenes import draw_balances

        draw_balances(app, target, WIDTH - 16, 12)
        banner = pygame.Rect(20, 72, WIDTH - 40, 56)
        draw_panel(target, banner, color=(120, 40, 40), border=PALETTE["warn"], radius=12)
        app.fonts.draw(
            target, TEST_STORE_LABEL, banner.center, size=30, color=PALETTE["warn"], anchor="center"
        )
        products = self.products
        if self.session.test_store is None:
            self._say(target, "This store sells top-ups only through a real app store.")
        elif self.session.catalog is None:
            spinner(target, (WIDTH // 2 - 100, 300), app.frame_no, PALETTE["accent"])
        elif not products:
            self._say(target, "The live catalog has no App Store products to sell.")
        self.index = max(0, min(self.index, len(products) - 1)) if products else 0
        for i, product in enumerate(products[:6]):
            self._draw_row(target, i, product)
        self._draw_footer(target)

    def _say(self, target: pygame.Surface, text: str) -> None:
        self.app.fonts.draw(
            target, text, (WIDTH // 2, 300), size=26, color=PALETTE["dim"], anchor="center"
        )

    def _draw_row(self, target: pygame.Surface, i: int, product: Product) -> None:
        app = self.app
        rect = pygame.Rect(60, self.ROW_TOP + i * self.ROW_HEIGHT, WIDTH - 120, self.ROW_HEIGHT - 8)
        app.hotspot(f"product:{i}", rect)
        chosen = i == self.index
        draw_panel(
            target,
            rect,
            color=PALETTE["panel_hi"] if chosen else PALETTE["panel"],
            border=PALETTE["gold"] if chosen else PALETTE["border"],
        )
        grants = [str(money) for money in product.grants.currencies] + [
            f"{entry.quantity} x {entry.sku}" for entry in product.grants.items
        ]
        app.fonts.draw(target, " + ".join(grants), (rect.left + 20, rect.centery), size=30,
                       anchor="midleft")  # fmt: skip
        app.fonts.draw(
            target,
            product.store_ids["app_store"],
            (rect.right - 20, rect.centery),
            size=20,
            color=PALETTE["dim"],
            anchor="midright",
        )
        if self.session.topping_up == product.id:
            spinner(target, (rect.right - 360, rect.centery), app.frame_no, PALETTE["accent"])

    def _draw_footer(self, target: pygame.Surface) -> None:
        app = self.app
        x, y = 16, HEIGHT - 34
        for key, text in (("Up/Down", "choose"), ("Enter", "pay (TEST)"), ("Esc", "shop")):
            x = key_cap(target, app.fonts, key, (x, y)).right + 6
            x = (
                app.fonts.draw(
                    target, text, (x, y + 12), size=20, color=PALETTE["dim"], anchor="midleft"
                ).right
                + 18
            )
        shop = app.hotspot("shop", pygame.Rect(WIDTH - 250, HEIGHT - 40, 110, 32))
        pay = app.hotspot("pay", pygame.Rect(WIDTH - 130, HEIGHT - 40, 114, 32))
        draw_button(target, app.fonts, shop, "Shop", color=(150, 150, 175), size=22)
        draw_button(
            target,
            app.fonts,
            pay,
            "Pay",
            color=PALETTE["gold"],
            size=22,
            enabled=bool(self.products),
        )
