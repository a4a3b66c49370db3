"""Result rows and the table they print as."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    suite: str
    name: str  # what kiln did
    value: float
    unit: str  # "s", "ms", "req/s", "MiB"
    baseline_name: str  # what it is compared with, measured in the same run
    baseline: float
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("inf")


def table(results: list[Result]) -> str:
    head = ("suite", "measurement", "kiln", "baseline", "baseline value", "ratio")
    rows = [
        (
            r.suite,
            r.name,
            f"{r.value:.3f} {r.unit}",
            r.baseline_name,
            f"{r.baseline:.3f} {r.unit}",
            f"{r.ratio:.2f}x" + (" (higher is better)" if r.higher_is_better else ""),
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)
