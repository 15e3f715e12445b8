#!/usr/bin/env python3
"""hashpool-redeem, laid out for reckless: this directory holds the entry point, ``requirements.txt`` and the
``hashpool_cln`` package (a link to the checkout's), so that ``reckless install hashpool-redeem`` copies all the
plugin needs into its own virtualenv. ``plugin/hashpool-redeem.py`` runs the same ``main``.
"""

from hashpool_cln.plugin import main

if __name__ == "__main__":
    main()
