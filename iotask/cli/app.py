"""What every command needs: the configuration, the database, and options they share.

SQLAlchemy, the database helpers and the runner are imported when a command first needs them,
not when the command line is parsed (`iotask --help` needs none of them).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from iotask import config as config_module
from iotask.errors import IotaskError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from iotask import runner

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class App:
    """What every command needs: configuration and a database, opened on first use."""

    def __init__(self, db_option: str | None, verbose: int) -> None:
        self.db_option = db_option
        self.verbose = verbose
        self._config: config_module.Config | None = None
        self._engine: Engine | None = None

    @property
    def config(self) -> config_module.Config:
        if self._config is None:
            self._config = config_module.load(self.db_option)
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from iotask import db

            self._engine = db.make_engine(self.config.database_url)
        return self._engine

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[Session]:
        """A session on a migrated database, committed when the block succeeds."""
        from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
        from sqlalchemy.orm import Session

        from iotask import db

        db.check_migrated(self.engine)
        bind = db.reader(self.engine) if read_only else self.engine
        with Session(bind, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                session.rollback()
                raise db.connect_error(self.engine.url, exc) from None
            except IntegrityError as exc:
                session.rollback()
                raise IotaskError(
                    f"the database refused the change (another process changed the same rows?): "
                    f"{db.reason(exc)}"
                ) from None
            except DBAPIError as exc:  # e.g. a value too long for its column on MariaDB
                session.rollback()
                raise IotaskError(f"the database refused the change: {db.reason(exc)}") from None

    def runner(self, trigger: str) -> runner.Runner:
        """A runner on a migrated database, with logging set up as configured."""
        from iotask import db, log, runner

        db.check_migrated(self.engine)
        log.setup(self.config, self.verbose)
        return runner.Runner(self.engine, self.config, trigger)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @property
    def at_terminal(self) -> bool:
        """A person is watching: stdout is a terminal (under cron it never is)."""
        return sys.stdout.isatty()

    def tell(self, message: str) -> None:
        """What a command that changes things did: shown at a terminal or with -v, never to
        cron."""
        if self.verbose or self.at_terminal:
            click.echo(message)

    def say(self, message: str) -> None:
        """Progress for people: shown only with -v."""
        if self.verbose:
            click.echo(message)


pass_app = click.make_pass_decorator(App)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
xml_option = click.option("--xml", "as_xml", is_flag=True,
                          help="Print Docebo's cron report as well-formed XML.")
