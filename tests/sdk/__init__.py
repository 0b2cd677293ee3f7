"""Tests of the Shopkeep SDK (a package, so its conftest.py has a name of its own)."""
