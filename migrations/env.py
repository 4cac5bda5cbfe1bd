"""Alembic environment: runs on the engine iotask hands over, or on the configured database."""

from alembic import context

from iotask import config as iotask_config
from iotask.db import make_engine
from iotask.models import metadata

cfg = context.config


def _engine():
    engine = cfg.attributes.get("engine")
    if engine is not None:
        return engine
    url = cfg.get_main_option("sqlalchemy.url") or iotask_config.load().database_url
    return make_engine(url)


def run_migrations_offline() -> None:
    url = cfg.get_main_option("sqlalchemy.url") or iotask_config.load().database_url
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
