"""``python -m docqa`` runs the command line."""

from docqa.cli import main

main()
