"""The ``shopkeep`` command's entry point, safe to install with the SDK alone.

The studio command line (:mod:`shopkeep.catalog_cli`) needs click and PyYAML, the SDK's ``cli``
extra. Without them the command says which install it needs, instead of a traceback.
"""

from __future__ import annotations

import sys

CLI_EXTRA = "pip install 'shopkeep[cli]'"
# What the extra brings (sdk/pyproject.toml): import names, checked before the commands load.
CLI_MODULES = ("click", "yaml")
# Exit code of a command that cannot run as installed (the CLI's USAGE code, click's too).
NOT_INSTALLED = 2


def missing_modules() -> list[str]:
    """The modules of the ``cli`` extra that cannot be imported here."""
    missing = []
    for name in CLI_MODULES:
        try:
            __import__(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


def main() -> None:
    """Run ``shopkeep``, or say what to install for it."""
    missing = missing_modules()
    if missing:
        print(
            "shopkeep: the studio command line needs the SDK's cli extra"
            f" ({', '.join(missing)} missing here). Install it with: {CLI_EXTRA}"
            " (from a checkout: pip install './sdk[cli]')",
            file=sys.stderr,
        )
        raise SystemExit(NOT_INSTALLED)
    from .catalog_cli import main as run

    run()


if __name__ == "__main__":
    main()
