"""The fetch progress bar: tqdm on a terminal or in Jupyter, silent anywhere else.

A bar is drawn only when it can be seen and is wanted: on a terminal (stderr is a TTY) or in a
Jupyter kernel (whose stderr is no TTY but renders widgets), and never when the ``CI``
environment variable is set, so logs of scheduled exports and CI runs stay clean.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

__all__ = ["ProgressBar", "progress_visible"]


def progress_visible(stream: IO[str] | None = None) -> bool:
    """Whether a progress bar on ``stream`` (stderr by default) would be seen by a person.

    Args:
        stream: where the bar would be drawn.

    Returns:
        False when ``CI`` is set; otherwise whether the stream is a TTY or this is Jupyter.
    """
    if os.environ.get("CI"):
        return False
    target = sys.stderr if stream is None else stream
    try:
        tty = bool(target.isatty())
    except (AttributeError, ValueError):  # a closed or bare stream
        tty = False
    return tty or _in_notebook()


class ProgressBar:
    """Jobs fetched so far, with pages, retries and the request rate beside them.

    Args:
        wanted: False turns the bar off whatever the surroundings.
        stream: where to draw (stderr by default; Jupyter draws a widget instead).
    """

    def __init__(self, wanted: bool, stream: IO[str] | None = None) -> None:
        self._bar: Any = None
        if not wanted or not progress_visible(stream):
            return
        file = sys.stderr if stream is None else stream
        if _in_notebook():
            try:
                from tqdm.notebook import tqdm as widget_tqdm

                self._bar = widget_tqdm(unit=" jobs", desc="fetch", leave=True)
                return
            except ImportError:
                pass  # no ipywidgets in this kernel: the text bar below works everywhere
        from tqdm import tqdm

        self._bar = tqdm(unit=" jobs", desc="fetch", file=file, dynamic_ncols=True, leave=True)

    @property
    def active(self) -> bool:
        """Whether a bar is being drawn."""
        return self._bar is not None

    def update(
        self, rows: int, *, pages: int, retries: int, requests: int, elapsed_s: float
    ) -> None:
        """Count ``rows`` more jobs and refresh the figures beside the bar."""
        if self._bar is None:
            return
        rate = requests / elapsed_s if elapsed_s > 0 else 0.0
        self._bar.set_postfix(pages=pages, retries=retries, req_s=f"{rate:.1f}", refresh=False)
        self._bar.update(rows)

    def close(self) -> None:
        """Finish the bar (it stays on screen); later calls do nothing."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel; looks only, never imports IPython."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
