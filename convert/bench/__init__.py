"""``shvit-bench``: export status, parity, accuracy, size and host latency of every target, side by side.

- :mod:`convert.bench.latency`    timed runs in each model's own runtime (one long-lived subprocess each), in interleaved rounds
- :mod:`convert.bench.baselines`  the plain conversions the Core ML and TFLite exports are measured against
- :mod:`convert.bench.run`        per variant: export (or reuse), or given artifacts per reference; check against PyTorch, time
- :mod:`convert.bench.output`     table, CSV, JSON and the speed–accuracy chart
"""
