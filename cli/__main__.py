"""``python -m mayfly.cli``: the same as the ``mayfly`` command."""

from mayfly.cli import main

main()
