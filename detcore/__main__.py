import sys

from detcore.cli import main

sys.exit(main())
