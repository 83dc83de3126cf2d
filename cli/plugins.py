"""``mayfly plugins``: what is registered and where it comes from."""

from __future__ import annotations

import typer

from mayfly.cli.options import JsonOpt
from mayfly.cli.output import print_json, table
from mayfly.core.plugins import default_plugins


def plugins(as_json: JsonOpt = False) -> None:
    """List plugins, their hooks and the providers and clouds (deploy plug-ins) they register."""
    loaded = default_plugins()
    docs = []
    for info in loaded.infos:
        docs.append(
            {
                "name": info.name,
                "module": info.module,
                "distribution": info.distribution,
                "version": info.version,
                "hooks": list(info.hooks),
                "providers": [
                    {"name": p, "capabilities": sorted(c.value for c in loaded.registry.get(p).capabilities)}
                    for p in info.providers
                ],
                "clouds": list(info.clouds),
            }
        )
    if as_json:
        print_json({"plugins": docs})
        return
    table(
        ("PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDERS", "CLOUDS", "HOOKS"),
        (
            (
                info.name,
                info.distribution,
                info.version,
                ", ".join(info.providers),
                ", ".join(info.clouds),
                ", ".join(info.hooks),
            )
            for info in loaded.infos
        ),
    )


__all__ = ["plugins", "typer"]
