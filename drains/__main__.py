import sys

from drains.cli import main

sys.exit(main())
