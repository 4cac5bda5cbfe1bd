"""How commands print: tables, JSON, run reports (text, JSON, Docebo XML) and progress bars.

Results go to stdout, problems to stderr; under cron (no terminal) nothing is drawn.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from iotask import clock, report, runner
from iotask.cli.app import App

if TYPE_CHECKING:
    from tqdm import tqdm

MIN_COLUMN = 8  # a column squeezed to fit the terminal keeps at least this many characters


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _fit(widths: list[int], available: int) -> list[int]:
    """Column widths that fit ``available`` characters, taken from the widest columns first."""
    fitted = list(widths)
    gaps = 2 * (len(fitted) - 1)
    while sum(fitted) + gaps > available:
        widest = max(range(len(fitted)), key=fitted.__getitem__)
        if fitted[widest] <= MIN_COLUMN:
            break
        fitted[widest] -= 1
    return fitted


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain table, two spaces between columns. At a terminal, long cells wrap so that the
    table fits its width; in a pipe every row stays on one line, for scripts."""
    import tabulate  # here, not at the top: cron's run-due never pays for it

    tabulate.MIN_PADDING = 0  # columns as wide as their widest cell, header included
    text_rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    max_widths: list[int | None] | None = None
    if sys.stdout.isatty():
        widths = [max([len(h)] + [len(r[i]) for r in text_rows]) for i, h in enumerate(headers)]
        fitted = _fit(widths, shutil.get_terminal_size().columns)
        if fitted != widths:
            max_widths = [w if w < full else None for w, full in
                          zip(fitted, widths, strict=True)]
    table = tabulate.tabulate(text_rows, headers=list(headers), tablefmt="plain",
                              disable_numparse=True, stralign="left", maxcolwidths=max_widths)
    for line in table.splitlines():
        click.echo(line.rstrip())


def local_time(value: str | None, tz: ZoneInfo) -> str:
    """An ISO time from the report as a person reads it; other words unchanged."""
    if not value or not value[:4].isdigit():
        return value or ""
    utc = datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)
    return clock.to_local(utc, tz).strftime("%Y-%m-%d %H:%M %Z")


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def emit_results(app: App, results: list[runner.TaskResult], as_json: bool,
                 as_xml: bool) -> None:
    """Report on stdout as asked; problems on stderr; exit 1 when any task failed or was held."""
    tz = app.config.timezone
    if as_json:
        click.echo(report.to_json(results, tz))
    elif as_xml:
        click.echo(report.to_xml(results, tz))
    elif app.verbose or app.at_terminal:
        executed = [r for r in results if r.executed or r.error]
        for result in executed:
            click.echo(report.summary_line(result))
        if not executed:
            click.echo("nothing due")
    for result in results:
        problem = report.problem_line(result)
        if problem:
            click.echo(f"iotask: {problem}", err=True)
    if not all(r.ok for r in results):
        raise SystemExit(1)


class ProgressBar:
    """One task's progress on stderr, drawn from its first batch and cleared when it ends.

    By bytes, with a percentage and an ETA, when the source knows its size; else rows and rate.
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self.bar: tqdm | None = None

    def update(self, rows: int, done: int | None, total: int | None) -> None:
        if done is None or total is None:
            position, total, postfix = rows, None, None
        else:
            position, postfix = done, f"{rows:,} rows"
        if self.bar is None:
            from tqdm import tqdm  # here, not at the top: cron's run-due never pays for it

            self.bar = tqdm(desc=self.task, total=total, initial=position, postfix=postfix,
                            unit=" rows" if total is None else "B", unit_scale=total is not None,
                            unit_divisor=1024, leave=False, file=sys.stderr)
            return
        if postfix is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(position - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def progress_bars(run: runner.Runner, as_json: bool, as_xml: bool) -> Iterator[None]:
    """Progress bars for a person at a terminal; never under cron, in a pipe or for scripts.

    Log lines on stderr (-vv) are written around the bar instead of through it.
    """
    if as_json or as_xml or not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    run.progress = ProgressBar
    with logging_redirect_tqdm(loggers=[logging.getLogger("iotask")]):
        yield
