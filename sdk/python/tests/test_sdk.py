"""Unit tests of the Python SDK's pure parts (no component needed):
`python3 -m unittest discover -s sdk/python/tests`."""

import os
import sys
import unittest
from types import SimpleNamespace as NS

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from stagegate_policy import Findings, PerTier, criteria, time  # noqa: E402


class FindingsTest(unittest.TestCase):
    def test_the_outcome_is_derived_from_blocking_findings(self):
        f = Findings()
        self.assertEqual(f.gate_outcome(), "allow")
        f.warn("x.warn", "", "a warning")
        self.assertEqual(f.gate_outcome(), "allow")
        self.assertEqual(f.progression_outcome(), "promote")
        f.block("x.block", "/plan", "blocks")
        self.assertEqual(f.gate_outcome(), "deny")
        self.assertEqual(f.progression_outcome(), "hold")
        self.assertEqual(f.monitoring_outcome(), "alert")
        self.assertEqual(f.codes(), ["x.warn", "x.block"])
        self.assertTrue(f.contains("x.block"))

    def test_an_unknown_severity_is_refused(self):
        with self.assertRaises(ValueError):
            Findings().add("fatal", "x.y", "", "no such severity")


class TiersTest(unittest.TestCase):
    def test_a_value_per_tier_and_every_tier_required(self):
        t = PerTier({"low": 100, "medium": 25, "high": 5, "critical": 0})
        self.assertEqual(t.get("high"), 5)
        self.assertEqual(t.get(NS(name="CRITICAL")), 0)
        with self.assertRaisesRegex(ValueError, "missing risk tier"):
            PerTier({"low": 1}, "max_first_stage_percent")
        with self.assertRaisesRegex(ValueError, "unknown risk tier"):
            PerTier({"low": 1, "medium": 1, "high": 1, "critical": 1, "extreme": 1})


class TimeTest(unittest.TestCase):
    def test_weekdays_and_rfc3339(self):
        self.assertEqual(time.weekday(0), "thursday")
        self.assertEqual(time.weekday(1_795_780_800_000), "friday")
        self.assertEqual(time.rfc3339(1_795_780_800_000), "2026-11-27T12:00:00Z")
        self.assertEqual(time.rfc3339(1_795_780_800_001), "2026-11-27T12:00:00.001Z")
        self.assertEqual(time.hours(1.5), 90 * time.MINUTE_MS)
        self.assertEqual(time.hours_between(2 * time.HOUR_MS, 0), -2.0)


class CriteriaTest(unittest.TestCase):
    def obs(self, metric, value, samples, end):
        return NS(metric=metric, value=value, samples=samples, window_end=end)

    def test_the_newest_observation_decides_with_enough_samples(self):
        o = criteria.Observations([
            self.obs("error_rate", 0.05, 5000, 1),
            self.obs("error_rate", 0.01, 5000, 2),
        ])
        c = NS(metric="error_rate", op=NS(name="LE"), threshold=0.02, min_samples=1000)
        self.assertEqual(o.status(c), criteria.MET)
        c.min_samples = 10_000
        self.assertEqual(o.status(c), criteria.INSUFFICIENT)
        self.assertEqual(o.status(NS(metric="latency", op="le", threshold=1, min_samples=None)),
                         criteria.MISSING)
        self.assertFalse(criteria.holds("lt", float("nan"), 1.0))


if __name__ == "__main__":
    unittest.main()
