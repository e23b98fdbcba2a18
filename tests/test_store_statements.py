"""Every SQL statement lives in ``store/``: the service modules build none inline, and the named
statements compile with the parameters they are given."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
from sqlalchemy import Update, bindparam, update
from sqlalchemy.sql import visitors

import crowdloop.service
import crowdloop.store
from crowdloop.store.queries import items

BUILDERS = {"select", "update", "insert", "delete", "text", "update_rows"}
"""SQLAlchemy's statement builders (and a helper that wraps one)."""


def inline_statements(source: str) -> list[str]:
    """Where ``source`` builds a statement: an import of a builder from SQLAlchemy, a call of one by
    its name, or a call through the SQLAlchemy module (``sa.select(...)``)."""
    tree = ast.parse(source)
    modules = {"sqlalchemy"}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [(node.lineno, f"imports {a.name}") for a in node.names if a.name in BUILDERS]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in BUILDERS:
            found.append((node.lineno, f"{func.id}(...)"))
        elif (  # ``sa.select(...)``, not ``dict.update(...)``
            isinstance(func, ast.Attribute)
            and func.attr in BUILDERS
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
        ):
            found.append((node.lineno, f"{func.value.id}.{func.attr}(...)"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_the_check_finds_inline_statements() -> None:
    source = (
        "import sqlalchemy as sa\nfrom sqlalchemy import select\n"
        "a = select(x)\nb = sa.update(y)\nc = {}\nc.update(d=1)\n"
    )
    assert inline_statements(source) == ["line 2: imports select", "line 3: select(...)", "line 4: sa.update(...)"]


def test_no_service_module_builds_a_statement() -> None:
    package = Path(crowdloop.service.__file__).parent
    inline = {
        path.name: found
        for path in sorted(package.glob("*.py"))
        if (found := inline_statements(path.read_text(encoding="utf-8")))
    }
    assert not inline, f"statements built in service modules (name them in crowdloop.store): {inline}"


def column_named_binds(statement: Update) -> list[str]:
    """The bound parameters of an UPDATE named like a column of its table that it does not SET:
    SQLAlchemy refuses to compile them (a parameter of a column's name sets that column)."""
    binds: set[str] = set()
    visitors.traverse(statement, {}, {"bindparam": lambda b: binds.add(b.key)})
    columns = {c.key for c in statement.table.c}
    setting = {getattr(c, "key", c) for c in statement._values or {}}
    return sorted(b for b in binds if b in columns and b not in setting)


def named_updates() -> list[tuple[str, Update]]:
    """Every UPDATE a module of ``crowdloop.store`` names."""
    found = []
    for module in pkgutil.iter_modules(crowdloop.store.__path__):
        if module.ispkg:
            continue
        names = vars(importlib.import_module(f"crowdloop.store.{module.name}"))
        found += [(f"{module.name}.{k}", v) for k, v in names.items() if isinstance(v, Update)]
    return found


def test_the_check_finds_a_parameter_named_like_a_column() -> None:
    bad = update(items).where(items.c.external_id == bindparam("external_id")).values(label=bindparam("label"))
    assert column_named_binds(bad) == ["external_id"]


@pytest.mark.parametrize(("name", "statement"), named_updates(), ids=[n for n, _ in named_updates()])
def test_no_update_binds_a_parameter_named_like_a_column(name: str, statement: Update) -> None:
    assert column_named_binds(statement) == [], f"{name}: rename the parameter"
