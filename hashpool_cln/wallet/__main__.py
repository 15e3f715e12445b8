"""``python -m hashpool_cln.wallet``: the same as ``hashpool-wallet``."""

import sys

from hashpool_cln.wallet.cli import main

sys.exit(main())
