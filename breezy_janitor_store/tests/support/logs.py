"""The store's plain-text log line, as a pattern."""

from __future__ import annotations

import re

TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[[^\]]+\] [\w.]+: .*"
)
