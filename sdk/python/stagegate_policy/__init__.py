"""The stagegate policy SDK for Python (componentize-py).

A policy is a Python module compiled with componentize-py into a component
that exports the `stagegate:policy/evaluate` interface (`wit/policy.wit`).
`stagegate build` runs componentize-py against the WIT the host serves and
puts this SDK on the module path, so a policy author needs neither. The
vocabulary mirrors the Rust SDK (`guest/sdk`):

- `Findings`: collect findings with a code, severity, JSON pointer and
  message, and derive the outcome from them;
- `criteria`: the newest observation per metric, whether a criterion is met
  and whether a trigger is breached;
- `PerTier`: thresholds that vary by risk tier, read from `params.json`;
- `time`: hour/day arithmetic on the integer timestamps the host passes.

A minimal policy (`policy.py`)::

    from stagegate_policy import Findings, Policy

    class Evaluate(Policy):
        def gate(self, request):
            f = Findings()
            if request.authorisation is None:
                f.block("authorisation.missing", "/authorisation",
                        "no deployment authorisation is recorded")
            return f.into_gate()

Determinism: the host grants a policy no WASI capability, so anything that
reaches for the outside world (clock, files, randomness) fails; `now` comes
in the request.
"""

from . import criteria, time
from .findings import Findings, Finding, Obligation
from .policy import Policy, PolicyError
from .tiers import PerTier, TIERS, tier_name

__all__ = [
    "Findings",
    "Finding",
    "Obligation",
    "Policy",
    "PolicyError",
    "PerTier",
    "TIERS",
    "tier_name",
    "criteria",
    "time",
]

#: The WIT package this SDK targets.
WIT_PACKAGE = "stagegate:policy@1.1.0"
