"""Helpers for testing connectors: shipped with clm-hub so plugin authors get them too."""

from clm_hub.testing.clock import VirtualClock

__all__ = ["VirtualClock"]
