"""What the generators of this folder share: Kubernetes YAML written the same way (block style,
indented lists, file contents and PromQL as literal blocks) under a GENERATED header, and a
command line that writes the file or, with --check, fails when the committed one is stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

LABELS = {"app.kubernetes.io/name": "comp-auditor", "app.kubernetes.io/part-of": "comp-auditor"}


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(header: str, document: dict[str, Any]) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1_000_000,
                     allow_unicode=True)
    return header + "---\n" + body


def configmap(name: str, data: dict[str, str], component: str | None = None) -> dict[str, Any]:
    labels = dict(LABELS)
    if component is not None:
        labels["app.kubernetes.io/component"] = component
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels}, "data": data}


def main(description: str, output: Path, render_text: Callable[[], str], script: str,
         argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true",
                        help="fail if the committed file differs, write nothing")
    args = parser.parse_args(argv)
    text = render_text()
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output.name} is stale: run python {script}", file=sys.stderr)
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output.name}")
    return 0
