"""The Python API behind every command: :func:`export` (as ``shvit-convert``) and :func:`check` (as ``shvit-check``).

- :mod:`.model`     the ``model`` argument: an ``nn.Module``, a checkpoint path or a variant name
- :mod:`.pipeline`  one export: load → export → validate → commit
- :mod:`.checking`  exported models against the reference
"""

from convert.api.checking import check
from convert.api.pipeline import ExportResult, export

__all__ = ["ExportResult", "check", "export"]
