"""Method names (as the CLI and configuration files spell them) and the classes behind them."""

from __future__ import annotations

from importlib import import_module

from crowdloop.errors import ConfigError

METHODS: dict[str, str] = {
    "mv": "crowdloop.aggregation.voting:MajorityVote",
    "wawa": "crowdloop.aggregation.voting:Wawa",
    "zbs": "crowdloop.aggregation.zero_based_skill:ZeroBasedSkill",
    "ds": "crowdloop.aggregation.dawid_skene:DawidSkene",
    "onecoin": "crowdloop.aggregation.dawid_skene:OneCoinDawidSkene",
    "ccds": "crowdloop.aggregation.dawid_skene:ClassConditionalDawidSkene",
    "glad": "crowdloop.aggregation.glad:GLAD",
    "mace": "crowdloop.aggregation.mace:MACE",
    "taxonomy": "crowdloop.aggregation.taxonomy_model:TaxonomySkillModel",
}


def method_class(name: str) -> type:
    """The aggregator class registered under ``name``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: auto, {', '.join(METHODS)}")
    module, _, attribute = METHODS[name].partition(":")
    return getattr(import_module(module), attribute)
