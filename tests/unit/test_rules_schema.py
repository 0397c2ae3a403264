"""`auditor rules schema`: the JSON Schema editors use agrees with the loader."""

import json
import subprocess
import sys

import jsonschema
import yaml

from auditor.rules.loader import NOT_RULE_FILES, default_rules_dir


def _schema():
    out = subprocess.run([sys.executable, "-m", "auditor.cli.main", "rules", "schema"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_the_shipped_rule_files_validate_against_the_published_schema():
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    files = [p for p in default_rules_dir().glob("*.yaml") if p.name not in NOT_RULE_FILES]
    assert files
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_the_schema_refuses_a_misspelt_key():
    schema = _schema()
    path = default_rules_dir() / "retention.yaml"
    data = yaml.safe_load(path.read_text())
    data["rules"][0]["within_day"] = data["rules"][0].pop("within_days")
    validator = jsonschema.Draft202012Validator(schema)
    assert any("within_day" in e.message or "within_days" in e.message
               for e in validator.iter_errors(data))
