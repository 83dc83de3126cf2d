"""Benchmarks: each prints Mayfly's figure beside its floor measured in the same run on the same machine.

Run all with ``python -m bench``; one with ``python -m bench dispatch`` (see ``--help``).
"""
