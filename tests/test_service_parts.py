"""The labeling service is composed of small parts with one job each, not a stack of mixins: no
class of ``crowdloop.service`` inherits from another of its classes, and every public method of
``LabelingService`` is a method of one of its parts, found by the part's name."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import crowdloop.service
from crowdloop.service import LabelingService, open_service


def service_classes() -> list[type]:
    """Every class defined in a module of ``crowdloop.service``."""
    found = []
    for info in pkgutil.iter_modules(crowdloop.service.__path__):
        module = importlib.import_module(f"crowdloop.service.{info.name}")
        found += [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    return found


def test_no_class_of_the_service_inherits_from_another() -> None:
    inherited = {
        cls.__qualname__: [b.__qualname__ for b in cls.__mro__[1:] if b.__module__.startswith("crowdloop.service")]
        for cls in service_classes()
    }
    assert LabelingService.__mro__[1:] == (object,)
    assert {name: bases for name, bases in inherited.items() if bases} == {}


def test_every_public_method_of_the_service_is_a_part_s(tmp_path) -> None:
    service = open_service(f"sqlite:///{tmp_path / 'parts.db'}")
    try:
        parts = {id(value): name for name, value in vars(service).items() if not name.startswith("_")}
        methods = {
            name: getattr(service, name)
            for name in dir(service)
            if not name.startswith("_") and inspect.ismethod(getattr(service, name))
        }
        owners = {name: parts.get(id(method.__self__)) for name, method in methods.items() if name != "close"}
        assert len(owners) >= 40
        assert {name: owner for name, owner in owners.items() if owner is None} == {}
        assert owners["submit"] == "tasks" and owners["refit"] == "jobs" and owners["progress"] == "reports"
    finally:
        service.close()
