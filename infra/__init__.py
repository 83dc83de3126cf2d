"""The deploy engine (Automation API, stack files, image pushes) and the deploy plug-ins of each cloud.

:mod:`.deploy`, :mod:`.stackfile` and :mod:`.images` name no cloud; each cloud's plug-in
(:class:`.cloud.Cloud`, the built-in ones under :mod:`.clouds`) is found through the
``mayfly_register_clouds`` hook.
"""
