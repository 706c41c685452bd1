"""``python -m ropevit_det SUBCOMMAND``: the same as the ``ropevit-det`` console command."""

import sys

from .cli.main import main

sys.exit(main())
