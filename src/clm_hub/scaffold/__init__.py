"""``clm-hub plugin new``: scaffold a third-party connector plugin package.

``generate`` renders the templates in ``templates/`` (package data) into a package that
installs, registers through the ``clm_hub`` entry-point group and passes the connector
contract kit out of the box; ``command.py`` is the click command around it.
"""

from clm_hub.scaffold.generator import Scaffolded, ScaffoldError, generate, validate_name

__all__ = ["ScaffoldError", "Scaffolded", "generate", "validate_name"]
