"""Findings as finance reads them: alerts files loaded leniently, and exported as CSV."""
