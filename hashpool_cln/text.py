"""Text that arrives as JSON: JSON escapes can carry lone surrogates ("\\ud800"), text that no UTF-8 secret, id,
key or file can hold. The desk's plugin glue checks its params with its own bounded walk (``plugin.wire``);
the mint, the mint client and the wallet check with this.
"""

from __future__ import annotations

import json
from typing import Any


def valid_unicode(data: Any) -> bool:
    """Whether every text in ``data`` (JSON values) has a UTF-8 form. RecursionError for data nested too deeply."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
