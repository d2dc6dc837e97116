"""The portal's working day as numbers: daily volumes, the hourly curve, flow rates, and users derived from them.

Pure arithmetic (no Locust import) so the shape is unit-tested in milliseconds and shared by the locustfile,
`loadtests.run` and the README's tables."""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_DAY = 24 * 3600

# The portal's published volumes (PLATFORM.md): online dossiers and online payments on a working day.
DOSSIERS_PER_DAY = 120_000
PAYMENTS_PER_DAY = 60_000

# Relative traffic of each hour of the day (Vietnam time, index = hour). Offices open 07:30-11:30 and
# 13:30-17:00, so citizens and agency systems peak mid-morning and mid-afternoon, dip at lunch, trickle through
# the evening and are nearly silent at night. Only the ratios matter: `hour_share` normalises them.
HOURLY_INTENSITY = (
    0.3, 0.3, 0.3, 0.3, 0.3, 0.3,      # 00-05 night
    1.0, 3.0, 8.0, 10.0, 10.0, 7.0,    # 06-11 morning ramp and peak
    4.0, 6.0, 9.0, 9.0, 8.0, 5.0,      # 12-17 lunch dip and afternoon peak
    3.0, 3.0, 3.0, 2.0, 1.0, 0.5,      # 18-23 evening
)

# Each virtual user starts one flow every PACING_SECONDS (Locust constant_pacing), so the users a rate needs are
# rate x pacing. Five seconds is several times one flow's duration at SLO latencies (a dossier flow is ~7 calls),
# so a user is idle most of the time and the offered rate does not depend on the platform's speed until it is
# overloaded -- then flows take longer than the pacing and the shortfall shows as a throughput drop.
PACING_SECONDS = 5.0

# Flows of the day and how many of each a day holds. A dossier flow is one reuse of a result: a citizen logs in
# at VNeID, lists the wallet and shares documents for the dossier, the receiving agency redeems the share and
# the issuing agency issues the result. A payment flow is one fee: the provincial system creates it, the payer
# pays (or not) at a bank or intermediary, the provincial system receives the callbacks and checks the status.
FLOWS_PER_DAY = {"dossier": DOSSIERS_PER_DAY, "payment": PAYMENTS_PER_DAY}

# Payer behaviour: what a payer does with a payment request (shares of payments; sum to 1).
PAYER_ACTIONS = {"pay": 0.85, "fail": 0.05, "abandon": 0.10}
# Where payers pay: VietQR transfers dominate (any bank app scans the code), then the intermediaries and the
# banks speaking the portal standard (shares of payments; sum to 1).
PAYER_CHANNELS = {"vietqr": 0.40, "vnpay": 0.25, "momo": 0.15, "agribank": 0.10, "vietinbank": 0.10}


def hour_share() -> tuple[float, ...]:
    """The share of the day's traffic in each hour (sums to 1)."""
    total = sum(HOURLY_INTENSITY)
    return tuple(value / total for value in HOURLY_INTENSITY)


def peak_to_night_ratio() -> float:
    return max(HOURLY_INTENSITY) / min(HOURLY_INTENSITY)


@dataclass(frozen=True)
class DayPlan:
    """A day replayed ``compress`` times faster than real time, with every volume scaled by ``volume``
    (1.0 = the portal's whole day; the smoke profile runs a tiny fraction of it through every flow)."""

    compress: float = 72.0
    volume: float = 1.0
    pacing_seconds: float = PACING_SECONDS

    def __post_init__(self) -> None:
        if self.compress <= 0 or self.volume <= 0 or self.pacing_seconds <= 0:
            raise ValueError("compress, volume and pacing must be positive")

    @property
    def duration_seconds(self) -> float:
        """Wall-clock length of the replayed day."""
        return SECONDS_PER_DAY / self.compress

    def hour_at(self, elapsed_seconds: float) -> int:
        """The hour of the simulated day at ``elapsed_seconds`` of wall time (the day starts at 00:00)."""
        simulated = elapsed_seconds * self.compress
        return min(int(simulated // 3600), 23)

    def flow_rate(self, flow: str, elapsed_seconds: float) -> float:
        """Flows of kind ``flow`` per wall-clock second at ``elapsed_seconds``."""
        per_day = FLOWS_PER_DAY[flow] * self.volume
        per_simulated_second = per_day * hour_share()[self.hour_at(elapsed_seconds)] / 3600
        return per_simulated_second * self.compress

    def peak_rate(self, flow: str) -> float:
        peak_hour = HOURLY_INTENSITY.index(max(HOURLY_INTENSITY))
        return self.flow_rate(flow, peak_hour * 3600 / self.compress)

    def users(self, flow: str, elapsed_seconds: float) -> int:
        """Virtual users of ``flow`` that offer its rate at ``elapsed_seconds`` (at least one, so every flow
        keeps running through the quiet night)."""
        return max(1, math.ceil(self.flow_rate(flow, elapsed_seconds) * self.pacing_seconds))

    def total_users(self, elapsed_seconds: float) -> int:
        return sum(self.users(flow, elapsed_seconds) for flow in FLOWS_PER_DAY)

    def spawn_rate(self) -> float:
        """Users per second when the shape steps from one hour to the next: the largest hourly step of users
        spread over a tenth of a (compressed) hour, so the ramp is quick but not a thundering herd."""
        step_seconds = 3600 / self.compress
        counts = [self.total_users(hour * step_seconds) for hour in range(24)]
        largest_step = max(abs(b - a) for a, b in zip(counts, counts[1:] + counts[:1], strict=True))
        return max(1.0, largest_step / (step_seconds / 10))

    def expected_flows(self) -> dict[str, float]:
        """Flows the whole replayed day offers (if the platform keeps up)."""
        return {flow: per_day * self.volume for flow, per_day in FLOWS_PER_DAY.items()}


# The two profiles of `python -m loadtests.run`: `smoke` squeezes the day into one minute at a 1/2000 volume
# (about 60 dossiers and 30 payments through every flow); `day` is the portal's whole day at --compress.
PROFILES = {
    "smoke": DayPlan(compress=SECONDS_PER_DAY / 60, volume=1 / 2000),
    "day": DayPlan(compress=72.0, volume=1.0),
}


def plan_for(profile: str, compress: float | None = None, volume: float | None = None) -> DayPlan:
    base = PROFILES[profile]
    return DayPlan(compress=compress or base.compress, volume=volume or base.volume,
                   pacing_seconds=base.pacing_seconds)
