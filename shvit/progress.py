"""Progress bars for steps that take more than a few seconds.

Drawn on a terminal only: a log file or CI output gets the step lines, not carriage-return
noise glued to the error line that may follow.
"""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(*, enabled: bool = True, **options: Any) -> Any:
    """A ``tqdm`` bar on stderr, hidden when ``enabled`` is False or stderr is not a terminal."""
    from tqdm import tqdm

    options.setdefault("leave", False)
    options.setdefault("dynamic_ncols", True)
    return tqdm(file=sys.stderr, disable=None if enabled else True, **options)
