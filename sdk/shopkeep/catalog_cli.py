"""`shopkeep`: a studio's command line for its catalog, over the HTTP studio API.

    shopkeep catalog pull [--version N | --live] [-o FILE]
    shopkeep catalog diff FILE [--against draft|live] [--exit-code]
    shopkeep catalog push FILE [--if-match ETAG]
    shopkeep catalog publish [--notes TEXT] [--if-match ETAG | --any-draft]
    shopkeep catalog versions
    shopkeep catalog rollback N
    shopkeep webhooks add|list|rotate|disable|enable|delete|deliveries|redeliver  (webhooks_cli)

Installed with the SDK's ``cli`` extra (``pip install 'shopkeep[cli]'``: click and PyYAML).
Every call goes through :class:`shopkeep.studio.StudioClient`, the SDK's engine: retries of
what is safe to resend, one idempotency key per command reused by its retries, typed errors.
The command's entry point is :mod:`shopkeep.cli`, which says what to install when click is
missing.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__, catalog_file
from .catalog_diff import describe, diff_catalogs, format_diff
from .catalog_file import CatalogFile, CatalogFileError
from .errors import (
    ConnectionError,
    ErrorCategory,
    PreconditionFailed,
    ShopkeepError,
    Timeout,
    ValidationError,
)
from .studio import ANY_DRAFT, CatalogVersion, StudioClient

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Re-sends after the first attempt: a command line gives up sooner than a game.
RETRIES = 2


class Exit(enum.IntEnum):
    """The documented exit codes (docs/studio.md, "The `shopkeep` command line")."""

    OK = 0
    REFUSED = 1  # the catalog or request was refused: validation, a stale draft, not found
    USAGE = 2  # wrong command line (click's own code for usage errors)
    AUTH = 3  # no token, or the token was refused (401) or is not a studio token (403)
    UNREACHABLE = 4  # no answer, or only transient ones after retries (5xx, 429, key in use)


class Failure(click.ClickException):
    """Ends the command with a message (one or more lines) and one of the exit codes."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.exit_code = int(code)  # type: ignore[misc]  # click reads it per instance

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


def _content(version: CatalogVersion) -> dict[str, Any]:
    """A version's catalog content without its publishing details."""
    return version.content or {"currencies": [], "items": []}


# ---------------------------------------------------------------------------------------------
# Turning errors into messages and exit codes
# ---------------------------------------------------------------------------------------------


def _said(error: ShopkeepError) -> str:
    """The store's message with its status, code and request id, for a person and a log."""
    return f"{error.message} ({error.status} {error.code}, request {error.request_id or '-'})"


def _fail_api(
    error: ShopkeepError,
    *,
    source: CatalogFile | None = None,
    what: str = "",
    action: str = "pushed",
) -> NoReturn:
    """The exit code and message for an answer of the store (an error with a status)."""
    if error.status == 401:
        raise Failure(
            f"error: the store refused the token: {error.message}."
            " Get a studio token with `shopkeep-server token --game G --role studio --sub you`.",
            Exit.AUTH,
        )
    if error.status == 403:
        raise Failure(f"error: {error.message} (use a studio token)", Exit.AUTH)
    if isinstance(error, PreconditionFailed) and error.status == 412:
        now = error.details.get("etag")
        again = "push again" if action == "pushed" else "publish again"
        raise Failure(
            "error: the draft was changed by someone else since it was read"
            + (f" (it is now {now})" if now else "")
            + f"; nothing was {action}. Look at it with `shopkeep catalog diff FILE`,"
            f" then {again}.",
            Exit.REFUSED,
        )
    if isinstance(error, ValidationError) and error.code == "validation_failed" and error.fields:
        if source is not None:
            lines = [p.render(source.filename) for p in source.problems(error.fields)]
        else:
            lines = [
                f"{what or 'draft'}: {describe(path, None)}: {message}"
                for path, messages in sorted(error.fields.items())
                for message in messages
            ]
        raise Failure("\n".join([*lines, f"error: {error.message}"]), Exit.REFUSED)
    if error.category is ErrorCategory.TRANSIENT:
        raise Failure(f"error: the store failed: {_said(error)}", Exit.UNREACHABLE)
    raise Failure(f"error: {_said(error)}", Exit.REFUSED)


@contextmanager
def _api_errors(
    *, source: CatalogFile | None = None, what: str = "", action: str = "pushed"
) -> Iterator[None]:
    """Answers of the store as exit codes; a call that got no answer is left to
    :meth:`Settings.client`, which knows the server's address."""
    try:
        yield
    except ShopkeepError as error:
        if error.status is None:
            raise
        _fail_api(error, source=source, what=what, action=action)


def _load(path: Path) -> CatalogFile:
    try:
        return catalog_file.load_file(path)
    except CatalogFileError as exc:
        raise Failure(str(exc), Exit.REFUSED) from exc
    except OSError as exc:
        raise Failure(f"error: cannot read {path}: {exc.strerror}", Exit.USAGE) from exc


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    """The global options, handed to every command."""

    server: str
    token: str | None

    @contextmanager
    def client(self) -> Iterator[StudioClient]:
        if not self.token:
            raise Failure(
                "error: no token: pass --token or set SHOPKEEP_TOKEN to a studio token"
                " (`shopkeep-server token --game G --role studio --sub you`).",
                Exit.AUTH,
            )
        client = StudioClient(self.server, self.token, max_retries=RETRIES)
        try:
            yield client
        except Timeout as exc:
            raise Failure(
                f"error: no answer from the store at {self.server}: {exc.message}",
                Exit.UNREACHABLE,
            ) from exc
        except ConnectionError as exc:
            raise Failure(
                f"error: cannot reach the store at {self.server}: {exc.message}",
                Exit.UNREACHABLE,
            ) from exc
        finally:
            client.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--server",
    envvar="SHOPKEEP_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="The store's base URL (env SHOPKEEP_SERVER).",
)
@click.option("--token", envvar="SHOPKEEP_TOKEN", help="A studio-role token (env SHOPKEEP_TOKEN).")
@click.version_option(__version__, prog_name="shopkeep")
@click.pass_context
def main(ctx: click.Context, server: str, token: str | None) -> None:
    """Shopkeep studio tools: keep the catalog in a file, ship it from the command line.

    \b
    Exit codes:
      0  done
      1  refused: the file or the draft is not valid, the draft changed under you
         (stale ETag, on push or publish), no such version; or differences found
         with diff --exit-code
      2  usage: wrong options or arguments, unreadable file
      3  authentication: no token, token refused, or not a studio token
      4  the store cannot be reached or failed (5xx)
    """
    ctx.obj = Settings(server=server, token=token)


@main.group()
def catalog() -> None:
    """The catalog: a draft you edit, and numbered versions you publish."""


@catalog.command()
@click.option("--version", "version", type=click.IntRange(min=1), help="A published version.")
@click.option("--live", is_flag=True, help="The version that is live now.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (.yaml, .yml or .json) instead of standard output.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json"]),
    help="File format (default: from the output's extension, else YAML).",
)
@click.pass_obj
def pull(
    settings: Settings, version: int | None, live: bool, output: Path | None, fmt: str | None
) -> None:
    """Fetch the draft (or a published version) as a catalog file."""
    if version is not None and live:
        raise click.UsageError("give --version or --live, not both")
    with settings.client() as client, _api_errors():
        if version is not None:
            content, label = _content(client.version(version)), f"version {version}"
        elif live:
            found = client.live()
            if found is None:
                raise Failure("error: nothing is published yet", Exit.REFUSED)
            content, label = _content(found), f"version {found.version} (live)"
        else:
            draft = client.draft()
            content, label = draft.content, f"the draft (ETag {draft.etag})"
    chosen: catalog_file.Format = catalog_file.format_of(output or "")
    if fmt is not None:
        chosen = "json" if fmt == "json" else "yaml"
    text = catalog_file.dumps(content, chosen)
    if output is None:
        click.echo(text, nl=False)
        click.echo(f"pulled {label}", err=True)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"pulled {label} into {output}", err=True)


@catalog.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--against",
    type=click.Choice(["draft", "live"]),
    default="draft",
    show_default=True,
    help="Compare the file with the draft or with the live version.",
)
@click.option("--exit-code", is_flag=True, help="Exit with 1 when there are differences.")
@click.pass_obj
def diff(settings: Settings, file: Path, against: str, exit_code: bool) -> None:
    """Show what FILE would change, per item and field."""
    source = _load(file)
    _raise_file_problems(source)
    with settings.client() as client:
        try:
            # The store's view of the file, by the store's own rules (defaults filled in,
            # references checked): a diff of a file the store would refuse would be a diff
            # of nothing real.
            mine = client.validate(source.data)
        except ValidationError as error:
            if error.code != "validation_failed" or not error.fields:
                _fail_api(error, source=source)
            raise Failure(str(source.error(error.fields)), Exit.REFUSED) from error
        except ShopkeepError as error:
            if error.status is None:
                raise
            _fail_api(error, source=source)
        with _api_errors():
            if against == "draft":
                draft = client.draft()
                theirs, label = draft.content, f"draft {draft.etag}"
            else:
                found = client.live()
                theirs = _content(found) if found is not None else {"currencies": [], "items": []}
                label = f"live version {found.version}" if found else "live (nothing published)"
    changes = diff_catalogs(theirs, mine)
    for line in format_diff(changes, before=label, after=str(file)):
        click.secho(line, fg=_colour(line))
    if exit_code and not changes.empty:
        raise SystemExit(int(Exit.REFUSED))


def _colour(line: str) -> str | None:
    if line.startswith("  + "):
        return "green"
    if line.startswith("  - "):
        return "red"
    if line.startswith("  ~ "):
        return "yellow"
    return None


def _raise_file_problems(source: CatalogFile) -> None:
    """push lets the store judge the fields (one set of rules); only a file that is not a
    catalog at all is refused here."""
    problems = []
    for section in ("currencies", "items"):
        if section in source.data and not isinstance(source.data[section], list):
            problems.append(
                catalog_file.Problem(source.line_of(section), section, "must be a list")
            )
    if problems:
        raise Failure(str(CatalogFileError(source.filename, problems)), Exit.REFUSED)


@catalog.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--if-match",
    "if_match",
    metavar="ETAG",
    help="Only if the draft still has this ETag (the one pull or diff showed you).",
)
@click.pass_obj
def push(settings: Settings, file: Path, if_match: str | None) -> None:
    """Replace the draft with FILE (never over a concurrent edit)."""
    source = _load(file)
    _raise_file_problems(source)
    with settings.client() as client:
        with _api_errors():
            before = client.draft()
        # The ETag read just now (or the one the caller reviewed) goes in If-Match: an edit
        # landing in between makes the store answer 412 instead of losing that edit.
        with _api_errors(source=source):
            after = client.put_draft(source.data, if_match=if_match or before.etag)
    changes = diff_catalogs(before.content, after.content)
    click.echo(f"pushed {file} to the draft ({changes.summary()}); draft ETag {after.etag}")
    click.echo(f"publish it with: shopkeep catalog publish --if-match '{after.etag}' --notes '...'")


@catalog.command()
@click.option("--notes", default="", help="What changed, for the version history.")
@click.option(
    "--if-match",
    "if_match",
    metavar="ETAG",
    help="Publish only the draft with this ETag (the one push printed).",
)
@click.option(
    "--any-draft",
    is_flag=True,
    help="Publish whatever the draft is now, without checking its ETag.",
)
@click.pass_obj
def publish(settings: Settings, notes: str, if_match: str | None, any_draft: bool) -> None:
    """Publish the draft as the next version: live at once for every player.

    Only the draft you reviewed is published: with --if-match, the draft of that ETag; without
    it, the draft as read now, whose changes against the live version are shown first. A
    draft changed by someone else in between is refused (exit 1) and nothing is published.
    """
    if if_match is not None and any_draft:
        raise click.UsageError("give --if-match or --any-draft, not both")
    with settings.client() as client:
        if any_draft:
            etag: Any = ANY_DRAFT
        elif if_match is not None:
            etag = if_match
        else:
            with _api_errors():
                draft = client.draft()
                found = client.live()
            live = _content(found) if found is not None else {"currencies": [], "items": []}
            changes = diff_catalogs(live, draft.content)
            click.echo(f"publishing draft {draft.etag} ({changes.summary()})", err=True)
            etag = draft.etag
        with _api_errors(what="draft", action="published"):
            published = client.publish(notes=notes, if_match=etag)
    click.echo(f"published version {published.version}: live now")


@catalog.command()
@click.pass_obj
def versions(settings: Settings) -> None:
    """List the published versions, newest first."""
    with settings.client() as client, _api_errors():
        found = client.versions()
    if not found:
        click.echo("nothing published yet")
        return
    click.echo(f"{'VERSION':>7}  {'LIVE':4}  {'PUBLISHED':20}  {'BY':20}  NOTES")
    for v in found:
        at = v.published_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{v.version:>7}  {'*' if v.live else '':4}  {at:20}"
            f"  {v.published_by:20}  {v.notes}".rstrip()
        )


@catalog.command()
@click.argument("version", type=click.IntRange(min=1))
@click.pass_obj
def rollback(settings: Settings, version: int) -> None:
    """Publish VERSION's content again as a new version (the draft is left as it is)."""
    with settings.client() as client, _api_errors():
        published = client.rollback(version)
    click.echo(
        f"rolled back: version {published.version} is live with the content of version"
        f" {version}; the draft is unchanged"
    )


# `shopkeep webhooks ...` lives in its own module, which builds on this one's Settings and
# error handling: imported here, at the end, so the group is part of every `main`.
from .webhooks_cli import webhooks  # noqa: E402

main.add_command(webhooks)
# The store settings' commands (shopkeep.stores_cli), imported last: they use Settings.
from .stores_cli import stores  # noqa: E402

main.add_command(stores)


if __name__ == "__main__":
    main()
