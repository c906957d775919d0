"""Built-in connector plugins, installed as ``clm_hub_plugins.<name>``.

Each sub-package is registered through the ``clm_hub`` entry-point group, exactly as a
third-party plugin would be, and uses only the public ``clm_hub`` API.
"""
