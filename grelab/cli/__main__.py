"""python -m grelab.cli: the grelab command."""
import sys

from grelab.cli import main

sys.exit(main())
