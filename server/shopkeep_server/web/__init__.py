"""The studio web page (/studio): sign in with a studio token, edit the draft, publish, roll
back, restock, and look up players for support. See views.py."""

from .views import blp

__all__ = ["blp"]
