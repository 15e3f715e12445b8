"""Text that arrives as JSON: JSON escapes can carry lone surrogates ("\\ud800"), text that no UTF-8 secret, id,
key or file can hold. The desk's plugin glue checks its params with its own bounded walk (``plugin.wire``);
the mint, the mint client and the wallet check with this. Hex fields are checked with ``is_hex``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_HEX = re.compile(r"[0-9a-fA-F]*")


def valid_unicode(data: Any) -> bool:
    """Whether every text in ``data`` (JSON values) has a UTF-8 form. RecursionError for data nested too deeply."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_hex(text: str, length: int | None = None) -> bool:
    """Whether ``text`` is hex digits only (either case), and ``length`` characters long when given."""
    return (length is None or len(text) == length) and _HEX.fullmatch(text) is not None
