"""Benchmarks (not tests): dualbus probes against peer tools on the same targets, same run."""
