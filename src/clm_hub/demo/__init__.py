"""`clm-hub demo`: the whole product on local simulators with a synthetic shop."""
