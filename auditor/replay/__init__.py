"""The file shell: JSON Lines through the engine, no broker needed."""
