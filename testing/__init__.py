"""Test helpers for Mayfly and its plugins: the provider conformance suite.

A third-party provider proves it behaves like the built-in ones by subclassing
:class:`ProviderConformance` in its own tests (see :mod:`mayfly.testing.conformance`).
"""

from __future__ import annotations

from mayfly.testing.conformance import CodeFiles, Launcher, ProviderConformance, SpecFactory, make_code

__all__ = ["CodeFiles", "Launcher", "ProviderConformance", "SpecFactory", "make_code"]
