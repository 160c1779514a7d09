"""dualbus: declarative SLO checking for dual Redis message-bus platforms."""

__version__ = "0.1.0"
