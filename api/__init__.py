"""Mayfly's HTTP API: the native ``/v1`` API, IronWorker v2 compatibility under ``/2``, metrics and the dashboard.

Served by ``mayfly server`` (FastAPI on uvicorn). Every request is authenticated by
a project token; every object is looked up within the token's project.
"""
