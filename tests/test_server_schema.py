"""Property-based tests of the API against its own OpenAPI schema (schemathesis): on generated
requests, valid and invalid, no route crashes, and every response (status, content type, body)
is one the schema documents."""

from __future__ import annotations

from dataclasses import fields

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from crowdloop.consensus import ConsensusPolicy, Prices
from crowdloop.consensus.policy import bounds_of
from crowdloop.server import create_app, ensure_admin
from crowdloop.server.schemas import PolicyIn
from crowdloop.service import open_service

APP = create_app(None, max_body_bytes=100_000)  # the service is bound per database below
# unknown query parameters are ignored (as HTTP APIs commonly do), so they are not generated as negative data
CONFIG = SchemathesisConfig.from_dict(
    {"generation": {"allow-extra-parameters": False}, "phases": {"coverage": {"enabled": False}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@pytest.fixture(scope="module")
def fuzzed(database_url):
    service = open_service(database_url, seed=0)
    APP.state.service, APP.state.admin_project_id = service, None
    admin = ensure_admin(service)
    api = TestClient(APP)
    made = api.post(
        "/projects",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "fuzz", "labels": ["a", "b", "c"], "gold_rate": 0.2},
    ).json()
    pid, owner = made["project"]["id"], made["owner"]["token"]
    annotator = api.post(
        f"/projects/{pid}/annotators", headers={"Authorization": f"Bearer {owner}"}, json={"name": "ann"}
    ).json()["token"]
    api.post(
        f"/projects/{pid}/items",
        headers={"Authorization": f"Bearer {owner}"},
        json={"items": [{"id": f"i{k}", "data": {"t": k}} for k in range(30)]},
    )
    yield {"pid": pid, "tokens": {"admin": admin, "owner": owner, "annotator": annotator}}
    service.close()


def token_for(path: str, tokens: dict[str, str]) -> str:
    """The caller a route is meant for, so that generated requests get past authentication."""
    if path in ("/projects", "/projects/upload"):
        return tokens["admin"]
    if "/tasks/" in path:
        return tokens["annotator"]
    return tokens["owner"]


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case, fuzzed):
    # steer valid parts of a request to the live project and a token with the right role; a part
    # generated invalid on purpose stays as generated
    modes = {location.value: info.mode.value for location, info in case.meta.components.items()}
    if modes.get("path", "positive") == "positive" and "project_id" in (case.path_parameters or {}):
        case.path_parameters["project_id"] = fuzzed["pid"]
    headers = {}
    if modes.get("header", "positive") == "positive":
        headers["Authorization"] = f"Bearer {token_for(case.operation.path, fuzzed['tokens'])}"
    # a schema-valid body may still break a rule JSON Schema cannot state (a label outside the
    # project's label space, a duplicate label, labels and taxonomy both given): 4xx is right there
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])


def number_part(schema: dict) -> dict:
    """The number schema of a property (of a nullable one: its non-null part)."""
    return next(p for p in schema.get("anyOf", [schema]) if p.get("type") in ("number", "integer"))


@pytest.mark.parametrize(
    ("settings", "models"), [(ConsensusPolicy, ("PolicyIn", "PolicyPatch", "PolicyOut")), (Prices, ("PricesIn",))]
)
def test_the_api_policy_has_the_engines_settings_defaults_and_bounds(settings, models):
    components = APP.openapi()["components"]["schemas"]
    engine, default = {f.name: f for f in fields(settings)}, settings()
    for model in models:
        properties = components[model]["properties"]
        assert set(properties) == set(engine), model
        for name, schema in properties.items():
            if model.endswith("In") and name != "prices":
                assert schema.get("default") == getattr(default, name), (model, name)
            if model.endswith("Patch"):
                assert schema.get("default") is None, (model, name)
            if "bounds" not in engine[name].metadata or model.endswith("Out"):
                continue
            bounds, number = bounds_of(settings, name), number_part(schema)
            assert number.get("exclusiveMinimum" if bounds.low_open else "minimum") == bounds.low, (model, name)
            assert number.get("exclusiveMaximum" if bounds.high_open else "maximum") == bounds.high, (model, name)
            assert number["type"] == ("integer" if bounds.integer else "number")
            assert ("null" in [p.get("type") for p in schema.get("anyOf", [])]) == (
                bounds.optional or model.endswith("Patch")
            )
    assert PolicyIn().to_policy() == ConsensusPolicy()
