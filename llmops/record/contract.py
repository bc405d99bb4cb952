"""What a run directory promises its readers, cheap to import: the results version and how host
and variant names become file names (the writer, the reader and the reporters all need them).
"""

from __future__ import annotations

import re

# The version of results.json's shape. Additions with defaults keep it (old directories still
# load, llmops.record.model); a change an older reader would misread raises it.
RESULTS_VERSION = 1


def safe_name(text: str) -> str:
    """A name usable as one path component: anything outside a small safe set becomes "_"."""
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text) or "_"
