"""The studio web page (/studio): sign in with a studio token, edit the draft, publish, roll
back, restock, and look up players for support.

Server-rendered pages over the same store functions as the API, reached through the layer both
share (runtime/): the same unit of work, the same idempotency records, the same If-Match check
on publish. So the page cannot do what the API would refuse, and refuses it with the API's own
field paths and messages. It imports nothing from api/ or from the catalog CLI. The URLs are
wired in routes.py.
"""

from .routes import blp

__all__ = ["blp"]
