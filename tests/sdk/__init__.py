"""Tests of the Shopkeep SDK (a package, so its conftest never shadows tests/conftest.py)."""
