"""``shvit-bench``: export status, parity, accuracy, size and host latency of every target, side by side.

- :mod:`convert.bench.latency`    timed runs in each artifact's own runtime, one subprocess per measurement
- :mod:`convert.bench.baselines`  the plain conversions the Core ML and TFLite exports are measured against
- :mod:`convert.bench.run`        per variant: export (or reuse), check against PyTorch, time
- :mod:`convert.bench.output`     table, CSV, JSON and the speed–accuracy chart
- :mod:`convert.bench.cli`        the command
"""
