"""Core AI target (Apple's 2026 on-device inference stack): ``.aimodel`` assets via coreai-torch.

Pure functions for the target registry: :mod:`.graph` (the Core AI-friendly wrapper),
:mod:`.export` (in-memory model, save, baseline), :mod:`.runtime` (parity and timing in the
reference runtime) and :mod:`.inspect` (facts read back from a saved asset).
"""
