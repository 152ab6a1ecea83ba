"""``python -m ringlog`` runs the command line."""

from ringlog.cli import main

main()
