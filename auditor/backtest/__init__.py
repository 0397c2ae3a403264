"""`auditor backtest`: what a rule change would have done to history, before it goes live."""
