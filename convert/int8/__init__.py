"""Accuracy-aware int8 for every target: quality targets, calibration ranges, greedy float selection, the engine.

:func:`engine.quantise_int8` runs the algorithm once over a target's :class:`engine.Int8Backend`
(:class:`convert.tflite.int8_mixed.TFLiteBackend`, :class:`convert.coreml.int8_mixed.CoreMLBackend`):
per-op sensitivity, then the fewest runs of ops kept float that bring the quantised model to a target
on the calibration images, else weight-only int8. :class:`engine.Int8Options` is the one options type
(``export_tflite(..., int8=...)``, ``export_coreml(..., int8=...)``); the report
(:class:`report.Int8Report`) is the same for both. Per-layer checks of artifacts:
``convert.tflite.int8_mixed.per_layer_errors`` and ``convert.coreml.int8_mixed.per_layer_errors``.
"""
