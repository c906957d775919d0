"""Typeform connector for clm-hub: NPS answers in, per respondent.

Registered through the ``clm_hub`` entry-point group as ``typeform``. See README.md for
settings, scopes and limits; ``simulator.py`` serves a local imitation of the API.
"""

from clm_hub import RegisterConnector, hookimpl

from .connector import Typeform
from .settings import Region, TypeformSettings

__all__ = ["Region", "Typeform", "TypeformSettings", "register_connectors"]


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    """Offer the Typeform connector."""
    register(Typeform)
