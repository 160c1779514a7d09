"""The reference dual-bus platform (product.md §9): real Redis servers and engine processes
with injectable faults. Shares no code with `probes/` on purpose: the platform and the
instrument must not be able to cancel out each other's bugs."""
