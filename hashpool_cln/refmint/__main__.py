import sys

from hashpool_cln.refmint.cli import main

sys.exit(main())
