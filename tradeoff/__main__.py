"""`python -m tradeoff` works like the `tradeoff` command."""

from .cli import main

main()
