"""Pure-math core of the lifecycle stage engine: no database, no network.

- :mod:`clm_hub.analytics.rfm`: tie-safe RFM scores and TOML segment maps (``presets/``).
- :mod:`clm_hub.analytics.btyd`: transaction summaries, BG/NBD, Gamma-Gamma and CLV
  (models in :mod:`~clm_hub.analytics.bg_nbd` and :mod:`~clm_hub.analytics.gamma_gamma`).

Submodules are not imported here so that RFM users do not pay for importing SciPy.
"""

__all__ = ["bg_nbd", "btyd", "gamma_gamma", "rfm"]
