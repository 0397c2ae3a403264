"""Stage 3 of the journey, metrics: engine updates are counted, then exposed at scrape time."""
