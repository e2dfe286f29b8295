"""Accuracy-aware int8, target-agnostic parts: quality targets, calibration ranges, greedy float selection.

The TFLite and Core ML specific halves live in :mod:`convert.tflite.int8_mixed` and
:mod:`convert.coreml.int8_mixed`; both measure per-op sensitivity, then keep in float the fewest
runs of ops that bring the quantised model to a target on the calibration images.

Entry points for the CLI and pipeline:

* TFLite: ``export_tflite(..., int8=Int8Options(mode="auto"|"full", keep_float=(...), target=QualityTarget(...),
  calibration="percentile"|"minmax"|"mse"))``; the ``int8`` :class:`TFLiteExport` then carries
  ``int8_report`` (:meth:`report.Int8Report.as_dict`). ``int8=None`` is the previous behaviour.
  Valid ``keep_float`` names: ``int8_mixed.quantised_ops(Path(any_tflite_of_the_export).read_bytes())``.
  Per-layer check of artifacts: ``int8_mixed.per_layer_errors(int8_bytes, fp32_bytes, pixels)``.
* Core ML: ``export_coreml(..., precision="int8", int8=CoreMLInt8Options(...))``, same fields;
  ``CoreMLExport.int8_report``. Valid names: ``convert.coreml.int8_mixed.list_quantisable_ops(package)``.
"""
