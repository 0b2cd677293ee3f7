"""Star Skipper: the Shopkeep sample game (pygame-ce) and its tiny studio backend.

- :mod:`sample_game.app`, :mod:`sample_game.scenes`: the game; ``python -m sample_game``.
- :mod:`sample_game.session`: the store through the SDK's background path, polled per frame.
- :mod:`sample_game.backend`: the studio backend that holds the service token and pays rounds.
- :mod:`sample_game.headless`: scripted, windowless runs for tests and screenshots.
"""

from .rules import DEFAULT_ROUND_SECONDS, max_coins_per_round

__all__ = ["DEFAULT_ROUND_SECONDS", "max_coins_per_round"]
