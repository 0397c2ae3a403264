"""Stage 0: rule files are parsed (safe YAML), validated (pydantic) and compiled into a RulePack."""
