"""Results: the median over repetitions, targets met or missed, a table, and JSON."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.measure import Measurement
from bench.scenarios import Scenario

PASSED, FAILED, ERROR = "PASS", "FAILED", "ERROR"


@dataclass
class ScenarioResult:
    name: str
    shape: str
    title: str
    how: str  # how the figures are measured
    size: str  # "quick" or "full"
    verification: str  # PASS, FAILED (a check failed) or ERROR (the scenario crashed)
    figures: dict[str, float] = field(default_factory=dict)  # medians over repetitions
    repetitions: list[dict[str, float]] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    notes: list[str] = field(default_factory=list)
    # Repetitions during which the hypervisor ran other guests on the cores for a while.
    machine_warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verification == PASSED


# Above this share of the machine's time stolen by the hypervisor, a repetition's figures say
# more about the host than about the server.
STEAL_WARNING_SHARE = 0.05
_TIME_PARTS = ("server_cpu", "client_cpu", "others_cpu", "idle_cpu", "steal")


def stolen_share(figures: dict[str, float]) -> float | None:
    """The share of the machine's time (both cores, over the measurement) that the hypervisor
    gave to other guests; None when the scenario does not account for the machine."""
    for suffix in ("_ms_per_run", "_s"):
        parts = [figures.get(f"{name}{suffix}") for name in _TIME_PARTS]
        if all(isinstance(p, int | float) for p in parts):
            total = sum(parts)  # type: ignore[arg-type]
            return parts[-1] / total if total else None  # type: ignore[operator]
    return None


def _median(values: list[float]) -> float:
    present = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return math.nan
    middle = statistics.median(present)
    return round(middle, 3) if isinstance(middle, float) else middle


def summarize(
    scenario: Scenario, shape: str, quick: bool, measurements: list[Measurement]
) -> ScenarioResult:
    keys = list(dict.fromkeys(k for m in measurements for k in m.figures))
    figures = {k: _median([m.figures[k] for m in measurements if k in m.figures]) for k in keys}
    errors = [e for m in measurements for e in m.errors]
    error_count = sum(m.error_count for m in measurements)
    result = ScenarioResult(
        name=scenario.name,
        shape=shape,
        title=scenario.title,
        how=scenario.how,
        size="quick" if quick else "full",
        verification=FAILED if error_count else PASSED,
        figures=figures,
        repetitions=[m.figures for m in measurements],
        samples=measurements[0].samples if measurements else {},
        units=dict(scenario.units),
        errors=errors[:10],
        error_count=error_count,
    )
    for i, m in enumerate(measurements, 1):
        share = stolen_share(m.figures)
        if share is not None and share > STEAL_WARNING_SHARE:
            result.machine_warnings.append(
                f"repetition {i}: {share:.0%} of the machine's time went to other guests "
                "(steal): its figures are the host's as much as the server's"
            )
    for target in scenario.targets:
        value = figures.get(target.figure, math.nan)
        if target.full_size_only and quick:
            verdict = "n/a (quick size)"
        elif isinstance(value, float) and math.isnan(value):
            verdict = "n/a"
        else:
            verdict = "PASS" if target.met(value) else "MISS"
        result.targets.append(
            {"figure": target.figure, "target": target.label(), "value": value, "result": verdict}
        )
    return result


def failed(scenario: Scenario, shape: str, quick: bool, reason: str) -> ScenarioResult:
    return ScenarioResult(
        name=scenario.name,
        shape=shape,
        title=scenario.title,
        how=scenario.how,
        size="quick" if quick else "full",
        verification=ERROR,
        errors=[reason],
        error_count=1,
    )


def _format(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def table(results: list[ScenarioResult]) -> str:
    header = ["scenario", "shape", "checks", "figure", "value", "target", ""]
    rows: list[list[str]] = []
    for r in results:
        goals = {t["figure"]: t for t in r.targets}
        first = [r.name, r.shape, r.verification]
        if not r.figures:
            rows.append([*first, "(no figures)", "", "", ""])
        for i, (name, value) in enumerate(r.figures.items()):
            goal = goals.get(name)
            unit = r.units.get(name, "")
            rows.append(
                [
                    *(first if i == 0 else ["", "", ""]),
                    name,
                    f"{_format(value)} {unit}".strip(),
                    goal["target"] if goal else "",
                    goal["result"] if goal else "",
                ]
            )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    previous = None
    for row in rows:
        if row[0] and previous is not None:
            lines.append("")
        previous = row
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for r in results:
        if r.machine_warnings:
            lines.append("")
            lines.extend(f"{r.name} ({r.shape}) {warning}" for warning in r.machine_warnings)
    problems = [r for r in results if not r.ok]
    for r in problems:
        lines.append("")
        lines.append(f"{r.name} ({r.shape}) {r.verification}: {r.error_count} problem(s)")
        lines.extend(f"  - {e}" for e in r.errors)
    return "\n".join(lines)


def header(machine: dict[str, Any], options: dict[str, Any]) -> str:
    versions = machine.get("versions", {})
    return (
        f"runyard bench {machine['date']}, {options['size']} size, repeat {options['repeat']}\n"
        f"machine: {machine['cpu_count']} x {machine['cpu_model']}, {machine['ram_gb']} GB RAM, "
        f"Python {machine['python']} ({machine.get('python_build')}), "
        f"Postgres {versions.get('postgres')}, Redis {versions.get('redis')}, "
        f"load {machine['load_average_at_start']} -> "
        f"{machine.get('load_average_at_end')}, commit {machine.get('git_commit')}\n"
    )


def document(
    machine: dict[str, Any], options: dict[str, Any], results: list[ScenarioResult]
) -> dict[str, Any]:
    return {
        "machine": machine,
        "options": options,
        "passed": all(r.ok for r in results),
        "scenarios": [asdict(r) for r in results],
    }
