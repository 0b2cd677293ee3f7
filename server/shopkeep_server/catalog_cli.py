"""`shopkeep`: a studio's command line for its catalog, over the HTTP studio API.

    shopkeep catalog pull [--version N | --live] [-o FILE]
    shopkeep catalog diff FILE [--against draft|live] [--exit-code]
    shopkeep catalog push FILE [--if-match ETAG]
    shopkeep catalog publish [--notes TEXT]
    shopkeep catalog versions
    shopkeep catalog rollback N

It only speaks HTTP (httpx) with a studio token, so it runs anywhere: a laptop, CI. Every POST
carries an Idempotency-Key that is reused on retries, so a retried publish publishes once.
"""

from __future__ import annotations

import dataclasses
import enum
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx

from shopkeep.errors import ErrorCategory, category_for

from . import __version__, catalog_file
from .catalog_file import CatalogFile, CatalogFileError

DEFAULT_SERVER = "http://127.0.0.1:8000"
ATTEMPTS = 3
MAX_RETRY_AFTER = 5.0


class Exit(enum.IntEnum):
    """The documented exit codes (README, "The `shopkeep` command line")."""

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


@dataclasses.dataclass(eq=False)
class ApiError(Exception):
    """An error answer of the store: the API's envelope, with the HTTP status."""

    status: int
    code: str
    message: str
    details: dict[str, Any]
    request_id: str

    def __str__(self) -> str:
        return f"{self.message} ({self.status} {self.code}, request {self.request_id})"

    @property
    def category(self) -> ErrorCategory | None:
        """The SDK's category of this answer: transient ones are retried with the same key."""
        return category_for(self.code, self.status)


def _api_error(response: httpx.Response) -> ApiError:
    try:
        error = response.json()["error"]
        return ApiError(
            response.status_code,
            str(error.get("code", "")),
            str(error.get("message", "")),
            dict(error.get("details") or {}),
            str(error.get("request_id", response.headers.get("X-Request-Id", "-"))),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(
            response.status_code,
            "unexpected_response",
            response.text[:200] or response.reason_phrase,
            {},
            response.headers.get("X-Request-Id", "-"),
        )


class StudioClient:
    """The studio endpoints of one store, with a studio token."""

    def __init__(
        self, server: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"shopkeep-cli/{__version__}",
            },
            timeout=30.0,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Sends one request; returns a 2xx response, raises ApiError for any other answer and
        Failure(UNREACHABLE) when no answer comes. Retries only what is safe to repeat: a
        request that never connected, a GET, or a POST (it carries an Idempotency-Key)."""
        all_headers = dict(headers or {})
        if method == "POST":
            all_headers.setdefault("Idempotency-Key", f"shopkeep-cli-{uuid.uuid4().hex}")
        repeatable = method in ("GET", "POST")
        delay = 0.2
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            try:
                response = self._http.request(method, path, json=json, headers=all_headers)
            except httpx.ConnectError as exc:
                if last:
                    raise Failure(
                        f"error: cannot reach the store at {self.server}: {exc}", Exit.UNREACHABLE
                    ) from exc
            except httpx.TransportError as exc:
                if last or not repeatable:
                    raise Failure(
                        f"error: no answer from the store at {self.server}: {exc!r}",
                        Exit.UNREACHABLE,
                    ) from exc
            else:
                if response.is_success:
                    return response
                error = _api_error(response)
                if error.category is not ErrorCategory.TRANSIENT or last:
                    raise error
                delay = _retry_after(response, delay)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    # --- the studio API --------------------------------------------------------------------

    def get_draft(self) -> tuple[dict[str, Any], str]:
        response = self.call("GET", "/v1/admin/catalog/draft")
        return response.json(), response.headers.get("ETag", "")

    def put_draft(self, content: Any, *, if_match: str) -> tuple[dict[str, Any], str]:
        response = self.call(
            "PUT", "/v1/admin/catalog/draft", json=content, headers={"If-Match": if_match}
        )
        return response.json(), response.headers.get("ETag", "")

    def versions(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/admin/catalog/versions").json()["versions"])

    def version(self, number: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/admin/catalog/versions/{number}").json())

    def live(self) -> dict[str, Any] | None:
        """The live version with its content, or None before the first publish."""
        live = next((v for v in self.versions() if v.get("live")), None)
        return None if live is None else self.version(int(live["version"]))

    def publish(self, notes: str) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/admin/catalog/publish", json={"notes": notes}).json())

    def rollback(self, version: int) -> dict[str, Any]:
        return dict(
            self.call("POST", "/v1/admin/catalog/rollback", json={"version": version}).json()
        )


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(response.headers.get("Retry-After", ""))))
    except ValueError:
        return default


def _content(version: Mapping[str, Any]) -> dict[str, Any]:
    """A version's catalog content without its publishing details."""
    return {"currencies": version.get("currencies", []), "items": version.get("items", [])}


# ---------------------------------------------------------------------------------------------
# Turning errors into messages and exit codes
# ---------------------------------------------------------------------------------------------


def _fail_api(error: ApiError, *, source: CatalogFile | None = None, what: str = "") -> NoReturn:
    if error.status == 401:
        raise Failure(
            f"error: the store refused the token: {error.message}."
            " Get a studio token with `shopkeep-server token --game G --role studio --sub you`.",
            Exit.AUTH,
        )
    if error.status == 403:
        raise Failure(f"error: {error.message} (use a studio token)", Exit.AUTH)
    if error.status == 412:
        now = error.details.get("etag")
        raise Failure(
            "error: the draft was changed by someone else since it was read"
            + (f" (it is now {now})" if now else "")
            + "; nothing was pushed. Look at it with `shopkeep catalog diff FILE`,"
            " then push again.",
            Exit.REFUSED,
        )
    if error.status == 422 and error.code == "validation_failed" and error.details:
        details = {str(k): [str(m) for m in v] for k, v in error.details.items()}
        if source is not None:
            lines = [p.render(source.filename) for p in source.problems(details)]
        else:
            lines = [
                f"{what or 'draft'}: {catalog_file.describe(path, None)}: {message}"
                for path, messages in sorted(details.items())
                for message in messages
            ]
        raise Failure("\n".join([*lines, f"error: {error.message}"]), Exit.REFUSED)
    if error.category is ErrorCategory.TRANSIENT:
        raise Failure(f"error: the store failed: {error}", Exit.UNREACHABLE)
    raise Failure(f"error: {error}", Exit.REFUSED)


@contextmanager
def _api_errors(*, source: CatalogFile | None = None, what: str = "") -> Iterator[None]:
    try:
        yield
    except ApiError as error:
        _fail_api(error, source=source, what=what)


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
        client = StudioClient(self.server, self.token)
        try:
            yield client
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
         (stale ETag), no such version; or differences found with diff --exit-code
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
            content, label = _content(found), f"version {found['version']} (live)"
        else:
            content, etag = client.get_draft()
            label = f"the draft (ETag {etag})"
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
    try:
        # The store's own field rules, run here: a diff of a file the store would refuse
        # would be a diff of nothing real.
        mine = catalog_file.check(source)
    except CatalogFileError as exc:
        raise Failure(str(exc), Exit.REFUSED) from exc
    with settings.client() as client, _api_errors():
        if against == "draft":
            theirs, etag = client.get_draft()
            label = f"draft {etag}"
        else:
            found = client.live()
            theirs = _content(found) if found is not None else {"currencies": [], "items": []}
            label = f"live version {found['version']}" if found else "live (nothing published)"
    changes = catalog_file.diff_catalogs(theirs, mine)
    for line in catalog_file.format_diff(changes, before=label, after=str(file)):
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
            before, etag = client.get_draft()
        # The ETag read just now (or the one the caller reviewed) goes in If-Match: an edit
        # landing in between makes the store answer 412 instead of losing that edit.
        with _api_errors(source=source):
            after, new_etag = client.put_draft(source.data, if_match=if_match or etag)
    changes = catalog_file.diff_catalogs(before, after)
    click.echo(f"pushed {file} to the draft ({changes.summary()}); draft ETag {new_etag}")
    click.echo("publish it with: shopkeep catalog publish --notes '...'")


@catalog.command()
@click.option("--notes", default="", help="What changed, for the version history.")
@click.pass_obj
def publish(settings: Settings, notes: str) -> None:
    """Publish the draft as the next version: live at once for every player."""
    with settings.client() as client, _api_errors(what="draft"):
        published = client.publish(notes)
    click.echo(f"published version {published['version']}: live now")


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
        at = str(v.get("published_at") or "")[:19].replace("T", " ")
        click.echo(
            f"{v['version']:>7}  {'*' if v.get('live') else '':4}  {at:20}"
            f"  {v.get('published_by', '')!s:20}  {v.get('notes', '')}".rstrip()
        )


@catalog.command()
@click.argument("version", type=click.IntRange(min=1))
@click.pass_obj
def rollback(settings: Settings, version: int) -> None:
    """Publish VERSION's content again as a new version (the draft is left as it is)."""
    with settings.client() as client, _api_errors():
        published = client.rollback(version)
    click.echo(
        f"rolled back: version {published['version']} is live with the content of version"
        f" {version}; the draft is unchanged"
    )


if __name__ == "__main__":
    main()
