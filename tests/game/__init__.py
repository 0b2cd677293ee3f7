"""Tests of the sample game (a package, so its test_cli.py and conftest.py have names of their
own beside tests/server's)."""
