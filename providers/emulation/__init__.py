"""Pieces every cloud emulator shares (``mayfly emulator aws | gcp | azure``): no cloud in them.

:mod:`.network` decides which address task containers use to reach an emulator and which
addresses it listens on; :mod:`.logpump` reads a container's output as timestamped lines.
Each cloud's emulator lives beside its provider (``providers/<name>/emulator``) and imports
these; providers stay independent of each other.
"""
