"""Storage of the labeling service: the SQLAlchemy schema, engines and Alembic migrations."""
