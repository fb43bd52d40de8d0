"""The base class a policy's `Evaluate` derives from."""

import json


class PolicyError(Exception):
    """Raise to fail the decision closed with this message."""


def _err(message):
    # The WIT `result<_, string>` error of componentize-py.
    from componentize_py_types import Err

    return Err(str(message))


class Policy:
    """Implements `stagegate:policy/evaluate`: `configure` parses
    `params.json` into `self.params`; a subclass overrides `gate`,
    `progression` and `monitoring` (each answers positively by default, so a
    policy that adds only gate rules writes only `gate`). A `PolicyError`,
    `ValueError` or `KeyError` raised by a decision becomes the policy's
    error, which the host turns into the fail-closed answer; any other
    exception traps, which fails closed all the same."""

    params = {}

    def configure(self, params):
        try:
            type(self).params = json.loads(params) if params.strip() else {}
            self.check_params(type(self).params)
        except (ValueError, KeyError, PolicyError) as e:
            raise _err(f"params.json: {e}")

    def check_params(self, params):
        """Override to refuse bad parameters (raise ValueError)."""

    def gate(self, request):
        from .findings import Findings

        return self._guard(lambda: self.decide_gate(request, Findings()))

    def progression(self, request):
        from .findings import Findings

        return self._guard(lambda: self.decide_progression(request, Findings()))

    def monitoring(self, request):
        from .findings import Findings

        return self._guard(lambda: self.decide_monitoring(request, Findings()))

    # What a policy overrides: add findings to `f` and return the decision.

    def decide_gate(self, request, f):
        return f.into_gate()

    def decide_progression(self, request, f):
        return f.into_progression()

    def decide_monitoring(self, request, f):
        return f.into_monitoring()

    @staticmethod
    def _guard(decide):
        try:
            return decide()
        except (ValueError, KeyError, PolicyError) as e:
            raise _err(e)
