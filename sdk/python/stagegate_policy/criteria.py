"""Observations against criteria, as docs/decisions.md defines them: the
newest observation per metric decides; a criterion is met when its value
satisfies the comparison with at least `min_samples` samples."""

MET = "met"
NOT_MET = "not_met"
INSUFFICIENT = "insufficient_samples"
MISSING = "missing"

_OPS = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def _op_name(op):
    return op if isinstance(op, str) else op.name.lower()


def holds(op, left, right):
    """`left op right`; a NaN never holds."""
    if left != left or right != right:
        return False
    return _OPS[_op_name(op)](left, right)


class Observations:
    """The newest observation (by `window_end`) of each metric."""

    def __init__(self, observations):
        self._newest = {}
        for o in observations:
            if o.metric is None or o.value is None:
                continue
            seen = self._newest.get(o.metric)
            if seen is None or (o.window_end or 0) >= (seen.window_end or 0):
                self._newest[o.metric] = o

    def latest(self, metric):
        return self._newest.get(metric)

    def status(self, criterion):
        """`met`, `not_met`, `insufficient_samples` or `missing`."""
        o = self.latest(criterion.metric) if criterion.metric else None
        if o is None or criterion.op is None or criterion.threshold is None:
            return MISSING
        if criterion.min_samples is not None and (o.samples or 0) < criterion.min_samples:
            return INSUFFICIENT
        return MET if holds(criterion.op, o.value, criterion.threshold) else NOT_MET

    def breached(self, trigger):
        """A trigger fires when its metric's newest value satisfies its
        comparison with enough samples."""
        return self.status(trigger) == MET
