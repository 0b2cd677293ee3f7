"""Shopkeep store server: catalogs, wallets, an append-only ledger and exactly-once purchases."""

__version__ = "0.1.0"
