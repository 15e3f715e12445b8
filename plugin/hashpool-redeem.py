#!/usr/bin/env python3
"""hashpool-redeem: a Core Lightning plugin that pays Lightning invoices and offers with Hashpool ehash.

lightningd runs this file with the interpreter its shebang names: that interpreter's environment must have the
``hashpool-cln`` package installed (see README.md, "Installing").
"""

from hashpool_cln.plugin import main

if __name__ == "__main__":
    main()
