"""The streaming shell: the engine's two stages as faust agents, their state in faust tables."""
