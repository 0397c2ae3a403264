"""`auditor rules test`: fixture-based unit tests for rule files, in the style of promtool."""
