#!/usr/bin/env python3
"""Validates an OSCAL assessment-results document two independent ways.

1. compliance-trestle loads it as its AssessmentResults model (pydantic,
   strict on field names and types).
2. Python jsonschema validates it against NIST's published OSCAL JSON schema
   (tests/fixtures/oscal/oscal_complete_schema.json, see SOURCE.md there).

Usage: validate.py DOCUMENT.json
Exit 0 when both accept it; 1 with the errors when either refuses it; 3 when a
dependency is missing (the Rust test turns that into a failure under CI).
"""

import json
import pathlib
import re
import sys

SCHEMA = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "oscal" / "oscal_complete_schema.json"
SCHEMA_SHA256 = "1fb34a1db562f06fa48669fb38a9af2dc3e87f52e44116071d7b564551911171"
AR = "oscal-complete-oscal-ar:assessment-results"

try:
    import jsonschema
    from trestle.oscal.assessment_results import AssessmentResults
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(f"missing Python dependency: {e} (pip install compliance-trestle jsonschema)")
    sys.exit(3)


def python_patterns(node):
    """NIST's TokenDatatype pattern uses the Unicode property escapes \\p{L}
    and \\p{N}, which ECMA-262 regexes know and Python's `re` does not.
    Rewrites them to Python's Unicode-aware equivalents: a letter is a word
    character that is neither a digit nor `_` ([^\\W\\d_]); \\p{N} becomes \\d.
    Every other part of the schema is used as published."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "pattern" and isinstance(v, str):
                v = v.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d")
                re.compile(v)
            out[k] = python_patterns(v)
        return out
    if isinstance(node, list):
        return [python_patterns(x) for x in node]
    return node


def main():
    doc_path = pathlib.Path(sys.argv[1])
    raw = doc_path.read_bytes()
    doc = json.loads(raw)
    errors = []

    # 1. trestle's model.
    try:
        AssessmentResults.model_validate(doc["assessment-results"])
    except Exception as e:  # pydantic.ValidationError and KeyError alike
        errors.append(f"trestle AssessmentResults refused it: {e}")

    # 2. NIST's JSON schema.
    import hashlib

    schema_bytes = SCHEMA.read_bytes()
    digest = hashlib.sha256(schema_bytes).hexdigest()
    if digest != SCHEMA_SHA256:
        errors.append(f"{SCHEMA} is not the published file (sha256 {digest})")
    schema = python_patterns(json.loads(schema_bytes))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        # The top level is a oneOf over every OSCAL model: name the
        # assessment-results branch's own errors rather than "not valid
        # under any of the given schemas".
        if err.validator == "oneOf" and not err.absolute_path:
            ar = {"$ref": f"#/definitions/{AR}", "definitions": schema["definitions"]}
            sub = cls(ar, format_checker=cls.FORMAT_CHECKER)
            inner = list(sub.iter_errors(doc.get("assessment-results")))
            if not inner:
                errors.append(f"schema: {err.message[:300]}")
            for e in inner:
                path = "/".join(str(p) for p in e.absolute_path)
                errors.append(f"schema: assessment-results/{path}: {e.message[:300]}")
        else:
            path = "/".join(str(p) for p in err.absolute_path)
            errors.append(f"schema: /{path}: {err.message[:300]}")

    # The document must declare the release the schema belongs to.
    schema_release = re.search(r"/(\d+\.\d+\.\d+)/", json.loads(schema_bytes)["$id"]).group(1)
    declared = doc.get("assessment-results", {}).get("metadata", {}).get("oscal-version")
    if declared != schema_release:
        errors.append(f"metadata/oscal-version is {declared!r}, the schema is OSCAL {schema_release}")

    if errors:
        print(f"{doc_path}: {len(errors)} problem(s)")
        for e in errors[:50]:
            print(" -", e)
        sys.exit(1)
    results = doc["assessment-results"]["results"]
    print(
        f"{doc_path}: valid OSCAL assessment results (trestle AssessmentResults and NIST schema "
        f"{json.loads(schema_bytes)['$id']}); {len(results)} result(s), "
        f"{sum(len(r.get('findings', [])) for r in results)} finding(s), "
        f"{sum(len(r.get('observations', [])) for r in results)} observation(s)"
    )


if __name__ == "__main__":
    main()
