"""Collecting findings and turning them into a decision.

Rules report every failing check, not just the first, so a rule never
returns early: it adds a finding and goes on. The outcome is derived from
the findings at the end, which keeps "a deny always carries at least one
finding that says why" true by construction.
"""

from dataclasses import dataclass, field
from typing import List, Optional

BLOCKING = "blocking"
WARNING = "warning"
INFO = "info"
SEVERITIES = (BLOCKING, WARNING, INFO)


@dataclass
class Finding:
    code: str
    severity: str
    path: str
    message: str
    controls: List[str] = field(default_factory=list)


@dataclass
class Obligation:
    code: str
    message: str
    until: Optional[int] = None


class Findings:
    """Findings and obligations of one decision, in the order found."""

    def __init__(self):
        self.findings: List[Finding] = []
        self.obligations: List[Obligation] = []

    def add(self, severity, code, path, message):
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
        self.findings.append(Finding(code, severity, path, message))
        return self

    def block(self, code, path, message):
        """A blocking finding: the decision cannot be positive."""
        return self.add(BLOCKING, code, path, message)

    def warn(self, code, path, message):
        """A warning: worth a human's attention, not blocking."""
        return self.add(WARNING, code, path, message)

    def info(self, code, path, message):
        """An informational finding."""
        return self.add(INFO, code, path, message)

    def oblige(self, code, message, until=None):
        """An obligation the deployment must honour if the decision is positive."""
        self.obligations.append(Obligation(code, message, until))
        return self

    def has_blocking(self):
        return any(f.severity == BLOCKING for f in self.findings)

    def contains(self, code):
        return any(f.code == code for f in self.findings)

    def codes(self):
        return [f.code for f in self.findings]

    # The outcome derived from the findings, as the host names it.

    def gate_outcome(self):
        """`deny` if any finding blocks, else `allow`."""
        return "deny" if self.has_blocking() else "allow"

    def progression_outcome(self, otherwise="promote"):
        """`hold` if any finding blocks, else `otherwise`."""
        return "hold" if self.has_blocking() else otherwise

    def monitoring_outcome(self, otherwise="healthy"):
        """`alert` if any finding blocks, else `otherwise`."""
        return "alert" if self.has_blocking() else otherwise

    # The WIT records (only inside a component, where the bindings exist).

    def into_gate(self, first_stage=None):
        """`deny` if any finding blocks, else `allow` with `first_stage`.
        Obligations are kept only on `allow`: a denied release owes nothing."""
        from wit_world.imports import types as t

        allow = not self.has_blocking()
        return t.GateDecision(
            outcome=t.GateOutcome.ALLOW if allow else t.GateOutcome.DENY,
            findings=self._wit_findings(),
            obligations=self._wit_obligations() if allow else [],
            first_stage=first_stage if allow else None,
        )

    def into_progression(self, outcome=None, next_stage=None, traffic_percent=None,
                         rollback_to=None):
        """A progression decision: `outcome` (a name) or, if None, the one
        derived from the findings. Stage and traffic are kept only on
        `promote`, the rollback procedure only on `rollback`."""
        from wit_world.imports import types as t

        name = outcome or self.progression_outcome()
        promote = name == "promote"
        return t.ProgressionDecision(
            outcome=t.ProgressionOutcome[name.upper()],
            findings=self._wit_findings(),
            obligations=self._wit_obligations() if promote else [],
            next_stage=next_stage if promote else None,
            traffic_percent=traffic_percent if promote else None,
            rollback_to=rollback_to if name == "rollback" else None,
        )

    def into_monitoring(self, outcome=None):
        """A monitoring decision: `outcome` (a name) or, if None, the one
        derived from the findings."""
        from wit_world.imports import types as t

        name = outcome or self.monitoring_outcome()
        return t.MonitoringDecision(
            outcome=t.MonitoringOutcome[name.upper()],
            findings=self._wit_findings(),
            obligations=self._wit_obligations(),
        )

    def _wit_findings(self):
        from wit_world.imports import types as t

        return [
            t.Finding(
                code=f.code,
                severity=t.FindingSeverity[f.severity.upper()],
                message=f.message,
                path=f.path,
                controls=list(f.controls),
            )
            for f in self.findings
        ]

    def _wit_obligations(self):
        from wit_world.imports import types as t

        return [t.Obligation(code=o.code, message=o.message, until=o.until)
                for o in self.obligations]
