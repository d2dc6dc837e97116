"""The benchmark table: each figure with its unit, the raw limit it is compared to, the ratio and the target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """One measured figure and, where an issue names one, its target."""

    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float = 0.0
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """All figures of one `make bench` run."""

    seconds: float
    figures: list[Figure] = field(default_factory=list)
    raw: dict[str, float] = field(default_factory=dict)

    def raw_limit(self, name: str, value: float, unit: str, **extra: Any) -> float:
        """Record a raw limit (echo, pyjwt, S3 put, PostgreSQL insert) for later ratios."""
        self.raw[name] = value
        self.figures.append(Figure(name=name, value=value, unit=unit, extra=extra))
        return value

    def compare(self, name: str, value: float, unit: str, *, baseline: str, higher_is_better: bool = True,
                ratio_target: float | None = None, absolute_target: float | None = None, **extra: Any) -> Figure:
        """A figure as a ratio to a raw limit; a target is met when the ratio (and absolute figure) reach it."""
        base = self.raw.get(baseline, 0.0)
        ratio = value / base if base else None
        met: bool | None = None
        targets = []
        errors = int(extra.get("errors", 0) or 0)
        if ratio_target is not None and ratio is not None:
            ok = ratio >= ratio_target if higher_is_better else ratio <= ratio_target
            met = ok
            targets.append(f"{'≥' if higher_is_better else '≤'} {ratio_target}× {baseline}")
        if absolute_target is not None:
            ok = value >= absolute_target if higher_is_better else value <= absolute_target
            met = ok if met is None else (met and ok)
            targets.append(f"{'≥' if higher_is_better else '≤'} {absolute_target:g} {unit}")
        if met is not None and errors:
            # A failed call is never a fast one: with errors the target is missed, whatever the rest says.
            met = False
            targets.append("no errors")
        figure = Figure(name=name, value=value, unit=unit, baseline=baseline, baseline_value=base, ratio=ratio,
                        target=" and ".join(targets), met=met, extra=extra)
        self.figures.append(figure)
        return figure

    def table(self) -> str:
        header = f"{'figure':<52} {'value':>12} {'unit':<10} {'ratio':>8}  {'vs':<26} {'target':<34} result"
        lines = [header, "-" * len(header)]
        for f in self.figures:
            ratio = f"{f.ratio:.2f}×" if f.ratio is not None else ""
            result = "" if f.met is None else ("MET" if f.met else "MISSED")
            extra = "  " + ", ".join(f"{k}={v}" for k, v in f.extra.items()) if f.extra else ""
            lines.append(f"{f.name:<52} {f.value:>12.2f} {f.unit:<10} {ratio:>8}  {f.baseline:<26} {f.target:<34} "
                         f"{result}{extra}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "figures": [asdict(f) for f in self.figures]}
