"""Tests of the sample game (a package, so its conftest never shadows tests/conftest.py)."""
