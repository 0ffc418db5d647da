"""Latency histograms: constant memory however many deliveries are recorded."""

from dataclasses import dataclass, field

BUCKET_US = 100  # 0.1 ms resolution
BUCKETS = 100_000  # up to 10 s; slower ones land in the last bucket (and in `max_us`)


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    total: int = 0
    max_us: int = 0

    def add(self, micros: int) -> None:
        bucket = micros // BUCKET_US
        self.counts[bucket if bucket < BUCKETS else BUCKETS - 1] += 1
        self.total += 1
        if micros > self.max_us:
            self.max_us = micros

    def merge(self, other: "Histogram") -> None:
        for i, n in enumerate(other.counts):
            if n:
                self.counts[i] += n
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)

    def percentiles_ms(self, *points: float) -> dict[str, float | None]:
        """{"p50": ms, …} for the given percentiles (upper edge of the bucket)."""
        result: dict[str, float | None] = {f"p{p:g}": None for p in points}
        if not self.total:
            return result
        targets = sorted((p, max(1, round(self.total * p / 100))) for p in points)
        seen, at = 0, 0
        for i, n in enumerate(self.counts):
            seen += n
            while at < len(targets) and seen >= targets[at][1]:
                edge = min((i + 1) * BUCKET_US, self.max_us) / 1000
                result[f"p{targets[at][0]:g}"] = round(edge, 2)
                at += 1
            if at == len(targets):
                break
        return result

    def summary(self) -> dict[str, float | None]:
        return {
            **self.percentiles_ms(50, 95, 99),
            "max": round(self.max_us / 1000, 2) if self.total else None,
        }
