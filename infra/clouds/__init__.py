"""The built-in deploy plug-ins, one package per cloud (see :mod:`mayfly.infra.cloud` and docs/clouds.md)."""
