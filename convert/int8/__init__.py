"""Accuracy-aware int8, target-agnostic parts: quality targets, calibration ranges, greedy float selection.

The TFLite and Core ML specific halves live in :mod:`convert.tflite.int8_mixed` and
:mod:`convert.coreml.int8_mixed`; both measure per-op sensitivity, then keep in float the fewest
ops that bring the quantised model to a target on the calibration images.
"""
