"""``python -m awncompress``: the same command line as ``awncompress``."""

from .cli import main

main()
