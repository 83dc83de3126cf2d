"""Built-in providers: one subpackage per place a task container can run.

Each registers itself through the ``mayfly.providers`` entry point group, exactly
as a third-party provider would.
"""
