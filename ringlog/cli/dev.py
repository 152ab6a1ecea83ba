"""``ringlog dev``: start, inspect and stop the embedded stack.

The stack's modules (Redis and SQLAlchemy clients among them) are imported inside the
commands, so ``ringlog dev --help`` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ringlog.cli.output import console, fail, print_json, print_table, quiet_libraries

if TYPE_CHECKING:
    from ringlog.config import Settings
    from ringlog.devstack import PartStatus

app = typer.Typer(
    help="The embedded stack: broker, Redis, warehouse, SQS, CRM.", no_args_is_help=True
)

#: What to run when the stack is not up.
START = "start it with `ringlog dev up` (or `make run`)"


@app.command("up")
def up() -> None:
    """Start every part not given by the environment (a no-op when the stack already runs),
    then create the declared topics, as `ringlog topics ensure` does."""
    from ringlog import devstack
    from ringlog.cli.topics import ensure_declared
    from ringlog.config import Settings

    quiet_libraries()
    settings = Settings.load()
    devstack.up(settings, home=settings.home)
    settings = Settings.load()  # now with the stack's addresses
    show_status(settings)
    ensure_declared(settings)


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show each part's address and whether it answers right now; exit 1 when the stack is
    not running or a part does not answer."""
    from ringlog import devstack
    from ringlog.config import Settings

    settings = Settings.load()
    parts = probe_parts(settings)
    if as_json:
        print_json(devstack.status_json(parts))
    else:
        print_parts(settings, parts)
    silent = [p.name for p in parts if not p.answers]
    if silent:
        fail(f"not answering: {', '.join(silent)}; {next_step(silent)}")


@app.command("down")
def down() -> None:
    """Stop exactly the processes `dev up` started; external parts are left alone."""
    from ringlog import devstack
    from ringlog.config import Settings

    settings = Settings.load()
    stopped = devstack.down(home=settings.home)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")


def probe_parts(settings: Settings) -> list[PartStatus]:
    """Probe every part; exit with one line when no stack was started under the home (and no
    part is given by the environment) or when probing itself fails."""
    from ringlog import devstack
    from ringlog.config import STACK_FILE, parts_given_by_environment

    home = settings.home
    if not (home / STACK_FILE).exists() and not parts_given_by_environment():
        fail(f"the embedded stack is not running (home {home}): {START}")
    try:
        return devstack.status(settings, home=home)
    except Exception as exc:  # noqa: BLE001 - any failure to probe is reported as one line
        fail(f"could not probe the stack of {home} ({type(exc).__name__}: {exc}); {START}")


def next_step(silent: list[str]) -> str:
    """What to run about the parts in ``silent``: fix the variable of a part given by the
    environment, or start the embedded stack again."""
    from ringlog.config import PART_ENV_VARS, parts_given_by_environment

    given = [PART_ENV_VARS[name] for name in silent if name in parts_given_by_environment()]
    if given:
        return f"check {', '.join(given)}, or unset it to use the embedded stack"
    return "`ringlog dev up` starts what is missing (`ringlog dev down` first if it hangs)"


def show_status(settings: Settings) -> None:
    """Print the stack's parts as a table."""
    from ringlog import devstack

    print_parts(settings, devstack.status(settings, home=settings.home))


def print_parts(settings: Settings, parts: list[PartStatus]) -> None:
    """Print ``parts`` as a table."""
    print_table(
        f"embedded stack ({settings.home})",
        ["part", "address", "answers", "started by ringlog", "pid"],
        [
            (
                p.name,
                p.address,
                "yes" if p.answers else "NO",
                "yes" if p.managed else "no",
                p.pid or "",
            )
            for p in parts
        ],
    )
