"""The load test's day model: compressed length, office-hour peaks vs quiet nights, daily volumes, payer mixes,
users derived from rates; and the locustfile importing with its users and shape (in a subprocess, because
importing Locust monkey-patches the interpreter with gevent)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.day import PAYER_ACTIONS, PAYER_CHANNELS, PROFILES, DayPlan, plan_for

ROOT = Path(__file__).resolve().parents[3]


def test_a_day_at_72x_lasts_twenty_minutes() -> None:
    assert DayPlan(compress=72).duration_seconds == pytest.approx(20 * 60)
    assert plan_for("day", compress=144).duration_seconds == pytest.approx(10 * 60)
    assert PROFILES["smoke"].duration_seconds == pytest.approx(60)


def _offered(plan: DayPlan, flow: str, step: float = 1.0) -> float:
    """Flows offered over the replayed day, integrating the rate second by second."""
    return sum(plan.flow_rate(flow, second * step) * step for second in range(int(plan.duration_seconds / step)))


def test_the_replayed_day_carries_the_portals_daily_volumes() -> None:
    plan = DayPlan(compress=72)
    # 120,000 dossiers and 60,000 payments a day (PLATFORM.md / issue 8).
    assert _offered(plan, "dossier") == pytest.approx(120_000, rel=1e-3)
    assert _offered(plan, "payment") == pytest.approx(60_000, rel=1e-3)
    assert _offered(plan_for("smoke"), "payment", step=0.1) == pytest.approx(60_000 / 2000, rel=1e-2)


def test_office_hours_peak_and_nights_are_quiet() -> None:
    plan = DayPlan(compress=1)  # one wall second per simulated second: elapsed = time of day

    def at(hour: float) -> float:
        return plan.flow_rate("dossier", hour * 3600)

    night, morning, lunch, afternoon, evening = at(3), at(9.5), at(12.5), at(14.5), at(20)
    assert morning > 20 * night and afternoon > 20 * night
    assert lunch < morning and lunch < afternoon
    assert night < evening < afternoon
    # The busiest hour is well above the day's mean (office hours are a third of the day).
    mean = 120_000 / 86_400
    assert 2 < plan.peak_rate("dossier") / mean < 4


def test_payer_behaviour_and_channels_are_shares_that_sum_to_one() -> None:
    assert sum(PAYER_ACTIONS.values()) == pytest.approx(1)
    assert PAYER_ACTIONS == pytest.approx({"pay": 0.85, "fail": 0.05, "abandon": 0.10})
    assert sum(PAYER_CHANNELS.values()) == pytest.approx(1)
    assert {"vietqr", "vnpay", "momo"} <= set(PAYER_CHANNELS)


def test_users_are_the_rate_times_the_pacing() -> None:
    plan = DayPlan(compress=72, pacing_seconds=5)
    for hour in (3, 10, 14):
        elapsed = hour * 3600 / 72
        for flow in ("dossier", "payment"):
            rate = plan.flow_rate(flow, elapsed)
            users = plan.users(flow, elapsed)
            assert users / 5 >= rate > (users - 1) / 5  # enough users to offer the rate, not one more
    assert math.isclose(plan.flow_rate("dossier", 0) / plan.flow_rate("payment", 0), 2.0)
    assert plan_for("smoke").users("payment", 0) >= 1  # every flow keeps at least one user at night


def test_spawn_rate_reaches_each_hours_users_within_a_tenth_of_the_hour() -> None:
    plan = DayPlan(compress=72)
    hour_seconds = 3600 / 72
    worst_step = max(abs(plan.total_users((h + 1) * hour_seconds) - plan.total_users(h * hour_seconds))
                     for h in range(23))
    assert plan.spawn_rate() * hour_seconds / 10 >= worst_step


def test_bad_plans_are_refused() -> None:
    with pytest.raises(ValueError):
        DayPlan(compress=0)


_PROBE = """
import json
import loadtests.locustfile as lf
shape = lf.WorkingDay()
first = shape.tick()
shape.start_time -= 1201  # past the end of a day at x72
print(json.dumps({"weights": [lf.DossierUser.weight, lf.PaymentUser.weight], "first": list(first),
                  "after": shape.tick(), "abstract": lf.PlatformUser.abstract}))
"""


def test_the_locustfile_imports_with_its_users_and_working_day_shape() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / '.gen'}"}
    env.pop("DVC_LOADTEST_NO_SHAPE", None)
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["weights"] == [120_000, 60_000]
    users, spawn_rate = probe["first"]
    assert users == DayPlan(compress=72).total_users(0) and spawn_rate > 0
    assert probe["after"] is None and probe["abstract"] is True
