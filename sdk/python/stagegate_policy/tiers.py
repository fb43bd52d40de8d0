"""Thresholds that vary by risk tier, read from `params.json`."""

TIERS = ("low", "medium", "high", "critical")


def tier_name(tier):
    """The `snake_case` name of a risk tier: a WIT enum value or a name."""
    if isinstance(tier, str):
        if tier not in TIERS:
            raise ValueError(f"unknown risk tier {tier!r}")
        return tier
    return tier.name.lower()


class PerTier:
    """One value per risk tier, as `params.json` gives it:
    `{"low": 100, "medium": 25, "high": 5, "critical": 0}`."""

    def __init__(self, values, what="value"):
        if not isinstance(values, dict):
            raise ValueError(f"{what}: expected an object with one value per risk tier")
        missing = [t for t in TIERS if t not in values]
        unknown = sorted(k for k in values if k not in TIERS)
        if missing:
            raise ValueError(f"{what}: missing risk tier(s) {', '.join(missing)}")
        if unknown:
            raise ValueError(f"{what}: unknown risk tier(s) {', '.join(unknown)}")
        self._values = dict(values)

    def get(self, tier):
        return self._values[tier_name(tier)]
