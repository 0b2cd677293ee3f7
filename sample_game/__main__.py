"""``shopkeep-demo`` / ``python -m sample_game``: play Star Skipper against a Shopkeep store."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shopkeep import __version__

from .rules import DEFAULT_ROUND_SECONDS

DEMO_SCRIPT = """
# The default headless run: a round on autopilot, its results, then the shop.
autopilot on
wait_idle
screenshot game-title
tap space
frames 600
screenshot game-play
until_scene ResultsScene
wait_idle
screenshot game-results
tap enter
wait_idle
screenshot game-shop
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every store setting also reads an environment variable."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.server and not args.player_token:
        parser.error("--server needs --player-token (or SHOPKEEP_PLAYER_TOKEN)")
    if not 10 <= args.round_seconds <= 120:
        parser.error("--round-seconds must be 10..120")
    return args


def build_parser() -> argparse.ArgumentParser:
    """The options, each with its help (and the variable that sets it, where one does)."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="shopkeep-demo",
        description="Star Skipper: a little arcade game whose shop is a Shopkeep store.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    store = parser.add_argument_group("store (default: start a private demo store)")
    store.add_argument("--server", default=env("SHOPKEEP_URL"), help="store URL (SHOPKEEP_URL)")
    store.add_argument(
        "--player-token",
        default=env("SHOPKEEP_PLAYER_TOKEN"),
        help="the player's token (SHOPKEEP_PLAYER_TOKEN)",
    )
    store.add_argument(
        "--service-token",
        default=env("SHOPKEEP_SERVICE_TOKEN"),
        help="run the studio backend in-process with this token (SHOPKEEP_SERVICE_TOKEN)",
    )
    store.add_argument(
        "--backend",
        default=env("SHOPKEEP_BACKEND_URL"),
        help="URL of a studio backend already running (SHOPKEEP_BACKEND_URL)",
    )
    store.add_argument(
        "--data-dir",
        type=Path,
        default=env("SHOPKEEP_DEMO_DIR"),
        help="where the private store and the purchase journal live (SHOPKEEP_DEMO_DIR)",
    )
    play = parser.add_argument_group("play")
    play.add_argument(
        "--round-seconds",
        type=int,
        default=DEFAULT_ROUND_SECONDS,
        help="length of a round, 10..120 (default: %(default)s)",
    )
    play.add_argument("--seed", type=int, help="random seed, for repeatable rounds")
    play.add_argument("--autopilot", action="store_true", help="let the ship fly itself")
    headless = parser.add_argument_group("headless (tests, screenshots)")
    headless.add_argument("--headless", action="store_true", help="no window (SDL dummy driver)")
    headless.add_argument("--script", type=Path, help="a script of steps (see headless.py)")
    headless.add_argument(
        "--screenshots",
        type=Path,
        default=Path("."),
        help="where --headless writes its PNG screenshots (default: the current directory)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the game; returns the exit status."""
    args = parse_args(argv)
    if args.headless:
        # Before pygame starts: no window, no sound device.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

    import pygame

    from .app import App, GameOptions
    from .headless import Driver, parse_script
    from .launch import Launcher, StoreSettings
    from .localstore import default_data_dir

    data_dir: Path = args.data_dir or default_data_dir()
    settings = StoreSettings(
        server=args.server,
        player_token=args.player_token,
        service_token=args.service_token,
        backend_url=args.backend,
        data_dir=data_dir,
        round_seconds=args.round_seconds,
    )
    launcher = Launcher(settings, data_dir).start()
    pygame.display.init()
    pygame.font.init()
    options = GameOptions(
        round_seconds=args.round_seconds, seed=args.seed, autopilot=args.autopilot
    )
    app = App(options=options, launching=launcher)
    try:
        if args.headless:
            driver = Driver(app, screenshot_dir=args.screenshots, max_wait_frames=60_000)
            driver.until(
                lambda: app.session is not None or launcher.error is not None,
                max_frames=200_000,
                what="the store",
            )
            if launcher.error:
                print(launcher.error, file=sys.stderr)
                return 1
            script = args.script.read_text() if args.script else DEMO_SCRIPT
            driver.run_script(parse_script(script))
            for path in driver.screenshots:
                print(path)
        else:
            app.run()
    finally:
        launcher.stop()
        pygame.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
