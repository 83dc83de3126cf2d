"""``mayfly project``: create and list projects (tenants) on this home. Local only: an operator's command."""

from __future__ import annotations

from typing import Annotated

import typer

from mayfly.cli import costs, webhooks
from mayfly.cli.context import open_local
from mayfly.cli.options import JsonOpt
from mayfly.cli.output import print_json, say, table
from mayfly.core.records import Project, iso

app = typer.Typer(help="Projects: tenants; every code, task, schedule and token belongs to one.", no_args_is_help=True)


def _json(project: Project) -> dict[str, object]:
    return {"id": project.id, "name": project.name, "created_at": iso(project.created_at)}


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Project name: letters, digits, '.', '_' and '-'.")],
    as_json: JsonOpt = False,
) -> None:
    """Create a project; then give it a token with 'mayfly token create --project NAME'."""
    mf = open_local("project create")
    project = mf.projects.create(name)
    if as_json:
        print_json(_json(project))
    else:
        say(f"created project {project.name} ({project.id})")


@app.command("list")
def list_projects(as_json: JsonOpt = False) -> None:
    """List the projects of this home."""
    mf = open_local("project list")
    projects = mf.projects.list()
    if as_json:
        print_json({"projects": [_json(p) for p in projects]})
        return
    table(("ID", "NAME", "CREATED"), ((p.id, p.name, iso(p.created_at)) for p in projects))


webhooks.register(app)
costs.register_budget(app)
