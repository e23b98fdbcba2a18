"""Alembic environment: migrations run on the connection ``crowdloop.store.db.upgrade`` passes in
(or, from the ``alembic`` command, on ``sqlalchemy.url`` / ``$CROWDLOOP_DATABASE_URL``)."""

from alembic import context

from crowdloop.store.db import make_engine
from crowdloop.store.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
