"""``python -m quals ...`` (also ``accelerate launch -m quals score ...``)."""

import sys

from quals.cli import main


sys.exit(main())
