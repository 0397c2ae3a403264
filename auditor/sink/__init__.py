"""Findings in PostgreSQL: the alerts topic (`auditor sink postgres`) or alerts files
(`auditor findings load`) upserted by alert_id into the `findings` table, whose schema the
auditor creates and migrates itself (schema.py)."""
