"""Fixtures of the unit tests; the builders live in unit_helpers.py beside this file."""

import shutil
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from auditor.events.decode import EventDecoder  # noqa: E402
from auditor.rules.loader import default_rules_dir, load_rule_pack  # noqa: E402
from auditor.rules.pack import RulePack  # noqa: E402


@pytest.fixture(scope="session")
def rules() -> RulePack:
    """The default rule pack, from the repo's rules/."""
    return load_rule_pack(default_rules_dir())


@pytest.fixture(scope="session")
def decoder(rules: RulePack) -> EventDecoder:
    return EventDecoder(rules.currency)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """An empty rules directory holding only a copy of the default currency.yaml."""
    directory = tmp_path / "rules"
    directory.mkdir()
    shutil.copy(default_rules_dir() / "currency.yaml", directory / "currency.yaml")
    return directory
