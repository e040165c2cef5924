"""The server's counters, rendered in Prometheus' text format for ``/metrics``.

A handful of numbers, so no client library: counters and gauges kept under one lock, written out as
``# TYPE`` lines and samples.
"""

from __future__ import annotations

import threading
from collections import defaultdict

#: name -> (type, help)
METRICS = {
    "constrained_requests_total": ("counter", "Requests answered, by endpoint and HTTP status."),
    "constrained_queue_depth": ("gauge", "Choices waiting for a slot in the batch."),
    "constrained_running": ("gauge", "Choices being denoised now."),
    "constrained_forward_passes_total": ("counter", "Denoiser forward passes (each serves every row in it)."),
    "constrained_row_steps_total": ("counter", "Rows over all forward passes (divide by passes: mean batch size)."),
    "constrained_model_seconds_total": ("counter", "Seconds of steps spent in the model's forward pass."),
    "constrained_step_other_seconds_total": ("counter", "Seconds of steps spent elsewhere: masks, acceptance, checks."),
    "constrained_generated_tokens_total": ("counter", "Text tokens generated."),
    "constrained_constraint_seconds_total": ("counter", "Seconds spent compiling and binding constraints."),
    "constrained_constraint_cache_hits_total": ("counter", "Requests whose constraint was already bound."),
}


class Metrics:
    """Thread-safe counters; labels are a sorted tuple of ``(key, value)`` pairs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(lambda: defaultdict(float))

    def add(self, name: str, value: float = 1.0, **labels: str) -> None:
        if name not in METRICS:
            raise KeyError(name)
        with self._lock:
            self._values[name][tuple(sorted(labels.items()))] += value

    def set(self, name: str, value: float, **labels: str) -> None:
        if name not in METRICS:
            raise KeyError(name)
        with self._lock:
            self._values[name][tuple(sorted(labels.items()))] = value

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values[name].get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in METRICS.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                samples = self._values.get(name) or {(): 0.0}
                for labels, value in sorted(samples.items()):
                    tag = ",".join(f'{key}="{val}"' for key, val in labels)
                    lines.append(f"{name}{{{tag}}} {value:g}" if tag else f"{name} {value:g}")
        return "\n".join(lines) + "\n"
