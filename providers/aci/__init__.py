"""Azure pieces of the ``aci`` provider (issue 16): container groups, Storage Queue, Blob storage.

Being built: so far only :mod:`.settings` (what an ``aci`` target records). Nothing registers a
``mayfly.providers`` entry point for ``aci`` until the provider class lands. See docs/azure.md.
"""
