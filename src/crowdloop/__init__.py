"""crowdloop: accurate labels from crowds, experts and models, for as few paid answers as possible."""

from crowdloop.answers import Answers, SoftAnswers, Temperature
from crowdloop.errors import ConfigError, CrowdloopError, InputError, TaxonomyError, UnknownLabelError
from crowdloop.labels import LabelSpace, Taxonomy

__version__ = "0.1.0"

__all__ = [
    "Answers",
    "ConfigError",
    "CrowdloopError",
    "InputError",
    "LabelSpace",
    "SoftAnswers",
    "Taxonomy",
    "TaxonomyError",
    "Temperature",
    "UnknownLabelError",
    "__version__",
]
