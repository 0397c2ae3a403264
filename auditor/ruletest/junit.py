"""JUnit XML for CI systems that show test reports."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from auditor.ruletest.runner import TestResult


def write_junit(results: list[TestResult], path: Path) -> None:
    failures = sum(1 for r in results if not r.passed and r.error is None)
    errors = sum(1 for r in results if r.error is not None)
    suite = ET.Element("testsuite", name="auditor rules test", tests=str(len(results)),
                       failures=str(failures), errors=str(errors),
                       time=f"{sum(r.seconds for r in results):.3f}")
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=Path(result.file).stem,
                             name=result.name, file=result.file, line=str(result.line),
                             time=f"{result.seconds:.3f}")
        if result.error is not None:
            ET.SubElement(case, "error", message=result.error).text = result.diff()
        elif not result.passed:
            message = f"{len(result.missing)} missing, {len(result.unexpected)} unexpected"
            if result.excepted:
                message += f", {len(result.excepted)} excepted count(s) differ"
            ET.SubElement(case, "failure", message=message).text = result.diff()
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
