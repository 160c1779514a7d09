"""Thin Dagster wiring: resources, assets, checks, jobs, schedules, sensors. Logic lives in the
pure packages (probes, slospec, store, report, alerts); this package only connects them."""
