"""Synthetic crowds: replay and simulation of labeling projects before anyone pays for them."""

from crowdloop.simulation.replay import ReplayResult, fixed_overlap, replay
from crowdloop.simulation.taxonomy_crowd import ARCHETYPES, Archetype, simulate_taxonomy_crowd

__all__ = ["ARCHETYPES", "Archetype", "ReplayResult", "fixed_overlap", "replay", "simulate_taxonomy_crowd"]
