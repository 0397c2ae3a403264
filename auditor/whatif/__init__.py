"""`auditor plans whatif`: history paid again under changed plans, compared with what was paid.

candidate.py builds the candidate plans (a plans file, or the registry with `--set`
overrides), history.py reads the events as replay decodes them, payout.py pays one deal,
runner.py adds the deals up per plan, team and quarter, report.py prints and writes JSON.
"""
