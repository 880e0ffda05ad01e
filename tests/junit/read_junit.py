"""Reads a JUnit XML file with junitparser (a JUnit reader from PyPI) and prints what it
understood as JSON: suites with their counts, cases, and each failure's type, message
and text. The integration tests compare that with what graphtape meant to write."""

import json
import sys

from junitparser import Failure, JUnitXml

xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for suite in xml:
    cases = []
    for case in suite:
        failures = [
            {"type": r.type, "message": r.message, "text": r.text}
            for r in case.result
            if isinstance(r, Failure)
        ]
        cases.append(
            {"name": case.name, "classname": case.classname, "failures": failures}
        )
    suites.append(
        {
            "name": suite.name,
            "tests": suite.tests,
            "failures": suite.failures,
            "cases": cases,
        }
    )
print(json.dumps(suites))
