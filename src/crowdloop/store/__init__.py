"""Storage of the labeling service: the SQLAlchemy schema, engines and Alembic migrations, and every
statement the service runs, named once by area: ``queries`` (the loop's hot path, claims, reviews),
``project_queries`` (projects, items, gold, annotators, tokens, imported answers), ``model_queries``
(model versions, training sets, predictions, automation), ``learning`` (suggestions, priorities,
label errors, the learning curve), ``refit_queries`` (the refit job) and ``report_queries``
(progress, results, exports, the event log)."""
