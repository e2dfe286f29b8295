"""The one I/O layer under every command: atomic staging and commit, per-run scratch folders, sidecars.

- :mod:`convert.io.staging`  build outputs (files or whole trees) privately, move them into place when complete
- :mod:`convert.io.scratch`  one scratch folder per run, passed explicitly to whatever needs temporary files
- :mod:`convert.io.sidecar`  hashes, toolkit versions and the ``<artifact>.json`` that traces an artifact
"""
