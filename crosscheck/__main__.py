import sys

from crosscheck.run.cli import main

sys.exit(main())
