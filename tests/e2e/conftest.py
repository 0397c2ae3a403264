"""Makes the helper modules of the end-to-end tests importable under any pytest import mode:
e2e_helpers.py beside this file, and tests/deploy/dashboard_queries.py (the dashboard's panel
queries, standard library only).

No fixtures live here: each test module builds what it runs, with the helpers.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent / "deploy"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
