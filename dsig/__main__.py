"""``python -m dsig``."""

from dsig.cli import main

main()
