"""`python -m carbonshift` is the same as the `carbonshift` command."""

from carbonshift.cli.app import main

main()
