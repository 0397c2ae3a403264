"""Stage 1 of the journey: raw input is validated into events, or becomes a dead letter."""
