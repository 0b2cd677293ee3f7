"""The demo's TEST store: an App Store stand-in that charges nothing.

It signs StoreKit 2 transactions with a certificate chain of its own
(:class:`shopkeep_server.sandbox_store.SandboxAppStore`), kept under the demo's data dir so what
it signed stays verifiable across runs, and it tells the demo's private store to trust its root
(and only that store: the App Store settings of the demo game, set with a studio token). So the
*Top up* screen goes through exactly what a real game does (a signed transaction, redeemed with
``StoreClient.redeem_receipt``, journaled) without Apple and without money: as an App Store
sandbox account would, and clearly labelled TEST in the game.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from shopkeep import Product
from shopkeep.studio import StudioClient
from shopkeep_server.demo import DEMO_BUNDLE_ID
from shopkeep_server.sandbox_store import SandboxAppStore

__all__ = ["TEST_STORE_LABEL", "TestAppStore"]

TEST_STORE_LABEL = "TEST STORE - no real money is charged"


class TestAppStore:
    """Signs App Store purchases of the demo's products, for the demo store only."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, chain: SandboxAppStore, *, bundle_id: str = DEMO_BUNDLE_ID) -> None:
        self.chain = chain
        self.bundle_id = bundle_id

    @classmethod
    def load_or_create(cls, directory: Path) -> TestAppStore:
        """The chain kept in ``directory`` (made there the first time)."""
        path = directory / "test-app-store.pem"
        if path.exists():
            return cls(SandboxAppStore.from_pem(path.read_text()))
        chain = SandboxAppStore.create()
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(chain.to_pem())
        path.chmod(0o600)
        return cls(chain)

    def register(self, store_url: str, studio_token: str) -> None:
        """Makes the demo game's App Store settings trust this store (sandbox environment)."""
        with StudioClient(store_url, studio_token) as studio:
            studio.set_store(
                "app_store",
                {
                    "bundle_id": self.bundle_id,
                    "environment": "sandbox",
                    "root_certificates": [self.chain.root_pem()],
                },
            )

    def sells(self, product: Product) -> bool:
        """Whether the product is sold on the App Store (so this store can sign it)."""
        return "app_store" in product.store_ids

    def pay(self, product: Product) -> str:
        """The player "pays": the signed transaction the App Store would hand the game."""
        return self.chain.transaction(
            bundle_id=self.bundle_id,
            product_id=product.store_ids["app_store"],
            transaction_id=f"test-{uuid.uuid4().hex[:16]}",
        )
