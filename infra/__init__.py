"""Pulumi component resources per cloud and the deploy engine (Automation API)."""
