"""comp-auditor: catches commission payouts that reward one-off deals over keeping customers."""

__version__ = "0.1.0"
