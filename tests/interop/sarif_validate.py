#!/usr/bin/env python3
"""Validates a SARIF log against the vendored SARIF 2.1.0 schema with
`jsonschema` (a validator stagegate did not write).

    sarif_validate.py SCHEMA LOG   exit 0 valid, 1 invalid (errors printed),
                                   3 jsonschema missing
"""

import importlib.metadata
import json
import sys

try:
    import jsonschema
except ImportError as e:  # pragma: no cover
    print(f"jsonschema is missing: {e}", file=sys.stderr)
    sys.exit(3)

schema = json.load(open(sys.argv[1]))
log = json.load(open(sys.argv[2]))
validator = jsonschema.Draft4Validator(schema)
errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
for e in errors:
    print(f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
results = sum(len(r.get("results", [])) for r in log.get("runs", []))
print(f"{'valid' if not errors else 'INVALID'}: SARIF {log.get('version')} with {results} result(s), "
      f"{len(errors)} schema error(s) (jsonschema {importlib.metadata.version('jsonschema')}, Draft 4)")
sys.exit(1 if errors else 0)
