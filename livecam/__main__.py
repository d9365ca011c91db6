"""``python -m livecam``: the ``livecam`` command."""

from livecam.cli import main

main()
