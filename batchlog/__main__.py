"""`python -m batchlog` runs the command line."""

from batchlog.adapters.cli import main

main()
