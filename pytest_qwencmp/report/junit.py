"""JUnit XML for comparison items: the properties each item carries, and a writer for merged runs.

:func:`item_properties` is the one list of JUnit properties an item carries
(its scores, interval bounds, MDE and verdict, scalars only; the whole record
travels separately, :func:`record_property`, and stays out of the XML): the
plugin attaches it to each test report, so pytest's own
``--junitxml`` writes it, and :func:`write_junit` writes a whole file for
``python -m pytest_qwencmp merge`` — one testcase per item, named as pytest
names it (:func:`testcase_names`), with the same properties and a
``<failure>`` holding the item's explanation when it missed its expectations.
"""

from __future__ import annotations

import json
import platform
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .formatting import verdict_text

RECORD_PROPERTY = "qwencmp"  # the whole record, carried from xdist workers to the controller, never written to XML
# The JUnit properties, one naming scheme: ``qwencmp_<key>`` holds the results JSON record's ``<key>`` (same value;
# booleans as true/false), and ``qwencmp_verdict`` the Verdict column of every table ("PASS · better").
SCORE_PROPERTIES = (
    "a", "b", "delta", "ci_low", "ci_high", "p_value", "adjusted_p", "adjusted_ci_low", "adjusted_ci_high", "mde",
)
OUTCOME_PROPERTIES = ("passed", "significance", "underpowered")
VERDICT_PROPERTY = "qwencmp_verdict"
# Added to a record after the test ran (by the controller or a merge): not part of the item's own property.
_AFTER_THE_RUN = ("outcome", "nodeid")
# XML 1.0 cannot hold these characters; pytest's junitxml shows them as #xNN the same way.
_ILLEGAL_XML = re.compile("[^\u0009\u000a\u000d\u0020-\u007e\u0080-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def record_property(record: Mapping[str, Any]) -> tuple[str, str]:
    """The whole record as one user property: how it travels from an xdist worker to the controller.

    The controller takes it off the report before JUnit XML is written: the
    record (prompts, answers, examples) belongs in the results JSON.
    """
    return RECORD_PROPERTY, json.dumps({k: v for k, v in record.items() if k not in _AFTER_THE_RUN})


def item_properties(record: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The documented JUnit properties of one item (scalars only): ``qwencmp_a`` … ``qwencmp_mde``,
    ``qwencmp_passed``, ``qwencmp_significance``, ``qwencmp_underpowered`` (the record's keys and values) and
    ``qwencmp_verdict`` (the tables' Verdict text)."""
    properties: list[tuple[str, Any]] = [(f"qwencmp_{key}", record.get(key)) for key in SCORE_PROPERTIES]
    for key in OUTCOME_PROPERTIES:
        value = record.get(key)
        properties.append((f"qwencmp_{key}", str(value).lower() if isinstance(value, bool) else value))
    properties.append((VERDICT_PROPERTY, verdict_text(record)))
    return properties


def testcase_names(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml derives them from a node id."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _text(value: Any) -> str:
    return _ILLEGAL_XML.sub(lambda m: f"#x{ord(m.group()):02X}", str(value))


@dataclass(frozen=True)
class Case:
    """One testcase: the item's node id, its properties and, when it failed, why."""

    nodeid: str
    properties: Sequence[tuple[str, Any]]
    failure: str | None = None


def write_junit(cases: Iterable[Case], path: Path, *, suite_name: str = "pytest", seconds: float = 0.0) -> Path:
    """Write ``path`` in the layout pytest's ``--junitxml`` uses (one suite, one testcase per item)."""
    cases = list(cases)
    failures = sum(1 for c in cases if c.failure is not None)
    suite = ET.Element(
        "testsuite",
        name=suite_name,
        errors="0",
        failures=str(failures),
        skipped="0",
        tests=str(len(cases)),
        time=f"{seconds:.3f}",
        timestamp=datetime.now(timezone.utc).astimezone().isoformat(),
        hostname=platform.node(),
    )
    for case in cases:
        classname, name = testcase_names(case.nodeid)
        node = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0.000")
        if case.properties:
            properties = ET.SubElement(node, "properties")
            for key, value in case.properties:
                ET.SubElement(properties, "property", name=str(key), value=_text(value))
        if case.failure is not None:
            failure = ET.SubElement(node, "failure", message=_text(case.failure.splitlines()[0] if case.failure else ""))
            failure.text = _text(case.failure)
    root = ET.Element("testsuites", name="pytest tests")
    root.append(suite)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode"), encoding="utf-8")
    return path
