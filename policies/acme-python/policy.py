"""ACME's organisation rules, added beside the reference policy in a
policy set. It decides only what it adds and leaves the stages to the
reference policy:

- acme.model_card_unpublished (gate, blocking): a system whose outputs
  inform consequential decisions, at `model_card_required_from` risk or
  above, has published its model card: capabilities, intended use and
  limitations, with a publication time no later than `now`;
- acme.first_stage_too_wide (gate, blocking): such a system starts on at
  most `consequential_max_first_stage_percent` of traffic;
- acme.promotion_freeze (progression, blocking): no promotion on the UTC
  weekdays in `promotion_freeze_weekdays`.
"""

from stagegate_policy import Policy, TIERS, tier_name, time


class Evaluate(Policy):
    def check_params(self, p):
        pct = p["consequential_max_first_stage_percent"]
        if not 0 <= pct <= 100:
            raise ValueError("consequential_max_first_stage_percent must be 0-100")
        if p["model_card_required_from"] not in TIERS:
            raise ValueError("model_card_required_from must be a risk tier")
        for i, d in enumerate(p["promotion_freeze_weekdays"]):
            if d not in time.WEEKDAYS:
                raise ValueError(f"promotion_freeze_weekdays[{i}]: {d!r} is not a weekday")

    def decide_gate(self, request, f):
        p = self.params
        system = request.system
        if system.consequential:
            from_tier = TIERS.index(p["model_card_required_from"])
            if TIERS.index(tier_name(system.risk_tier)) >= from_tier:
                card = request.communication
                published = card is not None and card.published_at is not None \
                    and card.published_at <= request.now
                complete = card is not None and bool(card.capabilities) \
                    and bool(card.intended_use) and bool(card.limitations)
                if not (published and complete):
                    f.block(
                        "acme.model_card_unpublished",
                        "/communication",
                        "ACME publishes a model card (capabilities, intended use, limitations) "
                        "before a system that informs consequential decisions goes live",
                    )
            stages = request.plan.stages if request.plan else []
            limit = p["consequential_max_first_stage_percent"]
            if stages and stages[0].traffic_percent is not None \
                    and stages[0].traffic_percent > limit:
                f.block(
                    "acme.first_stage_too_wide",
                    "/plan/stages/0/traffic_percent",
                    f"the first stage exposes {stages[0].traffic_percent:g} % of traffic; ACME "
                    f"starts systems that inform consequential decisions on at most {limit:g} %",
                )
        return f.into_gate()

    def decide_progression(self, request, f):
        day = time.weekday(request.now)
        frozen = self.params["promotion_freeze_weekdays"]
        if day in frozen:
            f.block(
                "acme.promotion_freeze",
                "/now",
                f"ACME does not widen exposure on a {day} (promotion freeze: {', '.join(frozen)})",
            )
        return f.into_progression()
