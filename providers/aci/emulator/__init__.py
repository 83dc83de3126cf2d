"""The local Azure emulator behind ``mayfly emulator azure``.

:mod:`.azurite` installs and starts Azurite (Microsoft's Storage emulator, from npm) for the
target's queues and blobs; the ARM endpoint for ``Microsoft.ContainerInstance`` that runs
container groups in local Docker joins it here (helper ``aciemu``, issue 16 part 5).
"""
