"""Makes the helper modules beside these tests importable under any pytest import mode.

No fixtures live here: the tests in this folder use plain functions from deploy_helpers.py and
dashboard_queries.py.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
