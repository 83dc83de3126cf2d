"""Node, Ruby and binary workers uploaded with IronWorker's own Python client run on Mayfly's runtimes.

Each worker is packaged the client's way (``CodePackage.merge`` and ``zip``, then
``postCode`` with ``runtime`` and ``file_name``) and reads its payload and task id
the way IronWorker's helpers for its language did: from the ``-payload FILE`` and
``-id ID`` arguments. The node-18 and ruby-3.1 images are built (offline, from
Debian's packages) only when this module runs.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from iron_worker import CodePackage, IronWorker
from requests.exceptions import HTTPError

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PAYLOAD = {"name": "mayfly", "n": [1, 2, 3], "text": "ünïcode"}

NODE_HELPER = """\
// What IronWorker's node helper did: the task's files come as -payload, -config and -id arguments.
const fs = require('fs');
function arg(name) {
  const i = process.argv.indexOf('-' + name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
exports.params = () => JSON.parse(fs.readFileSync(arg('payload'), 'utf8'));
exports.taskId = () => arg('id');
"""
NODE_WORKER = """\
const worker = require('./iron_helper');
console.log('node ' + process.versions.node.split('.')[0]);
console.log('payload: ' + JSON.stringify(worker.params()));
console.log('task: ' + worker.taskId());
"""
RUBY_HELPER = """\
# What iron_worker_ng's ruby runner did: the task's files come as -payload, -config and -id arguments.
require 'json'
module IronHelper
  def self.arg(name)
    i = ARGV.index("-#{name}")
    i && ARGV[i + 1]
  end
  def self.params = JSON.parse(File.read(arg('payload')))
  def self.task_id = arg('id')
end
"""
RUBY_WORKER = """\
require_relative 'iron_helper'
puts "ruby #{RUBY_VERSION.split('.')[0, 2].join('.')}"
puts "payload: #{JSON.generate(IronHelper.params)}"
puts "task: #{IronHelper.task_id}"
"""
BINARY_WORKER = """\
#!/bin/sh
echo "binary $(basename "$0")"
echo "payload: $(cat "$PAYLOAD_FILE")"
echo "task: $TASK_ID"
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, language_images: dict[str, str], start_server: Any
) -> Iterator[Any]:
    with start_server(tmp_path_factory.mktemp("languages"), "langs") as srv:
        yield srv


@pytest.fixture(scope="module")
def iw(server: Any) -> IronWorker:
    return IronWorker(
        token=server.token,
        project_id=server.project_id,
        host="127.0.0.1",
        port=server.port,
        protocol="http",
        api_version=2,
    )


def _package(tmp: Path, name: str, runtime: str, files: dict[str, str], executable: str) -> CodePackage:
    """A code package made the client's way: files merged one by one, zipped by ``CodePackage.zip``."""
    code = CodePackage(name=name, runtime=runtime)
    for file_name, text in files.items():
        path = tmp / file_name
        path.write_text(text)
        if file_name == executable and text.startswith("#!"):
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        code.merge(str(path))
    code.executable = executable
    assert code.zip(destination=str(tmp / f"{name}.zip"))
    return code


def _run(iw: IronWorker, code: CodePackage) -> tuple[str, list[str]]:
    task = iw.queue(code_name=code.name, payload=PAYLOAD)
    done = iw.wait_for_task(task)
    log = iw.log(done)
    assert done.status == "complete", log
    return str(task.id), log.splitlines()


@pytest.mark.parametrize(
    ("runtime", "files", "executable", "mayfly_runtime", "first_line"),
    [
        ("node", {"worker.js": NODE_WORKER, "iron_helper.js": NODE_HELPER}, "worker.js", "node-18", "node 18"),
        ("ruby", {"worker.rb": RUBY_WORKER, "iron_helper.rb": RUBY_HELPER}, "worker.rb", "ruby-3.1", "ruby 3.1"),
        ("binary", {"worker": BINARY_WORKER}, "worker", "shell", "binary worker"),
    ],
    ids=["node", "ruby", "binary"],
)
def test_a_worker_of_ironworkers_runtime_runs_and_reads_its_payload(
    iw: IronWorker,
    tmp_path: Path,
    runtime: str,
    files: dict[str, str],
    executable: str,
    mayfly_runtime: str,
    first_line: str,
) -> None:
    code = iw.postCode(_package(tmp_path, f"{runtime}-hello", runtime, files, executable))
    assert iw.code(code.id).runtime == mayfly_runtime
    task_id, lines = _run(iw, code)
    assert lines[0] == first_line
    assert lines[1].startswith("payload: ")
    assert json.loads(lines[1].removeprefix("payload: ")) == PAYLOAD
    assert lines[2] == f"task: {task_id}"


def test_a_deprecated_stack_runs_on_the_languages_runtime(server: Any) -> None:
    """``stack: ruby-2.1`` (IronWorker's stacks list) runs on ruby-3.1; an upload shows the command it got."""
    files = {"data": (None, json.dumps({"name": "stacked", "stack": "ruby-2.1", "file_name": "worker.rb"}))}
    files["file"] = ("w.zip", _zip({"worker.rb": "puts 1"}), "application/zip")  # type: ignore[assignment]
    r = httpx.post(server.path("codes"), headers=server.auth, files=files)
    assert r.status_code == 200, r.text
    assert (r.json()["runtime"], r.json()["command"], r.json()["file_name"]) == (
        "ruby-3.1",
        "ruby worker.rb",
        "worker.rb",
    )


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        ("php", "runtime 'php': Mayfly has no php runtime; register a Docker image with PHP and the code"),
        ("go", "runtime 'go': Mayfly has no go runtime; build a static binary and upload it with runtime 'binary'"),
        ("cobol", "runtime 'cobol' is not available; use runtime 'python' or 'python3' (Mayfly's python-3.11), 'node'"),
    ],
)
def test_an_unknown_runtime_is_refused_with_what_to_use(
    iw: IronWorker, server: Any, tmp_path: Path, runtime: str, message: str
) -> None:
    with pytest.raises(HTTPError) as failure:
        iw.postCode(_package(tmp_path, "nope", runtime, {"worker.x": "x"}, "worker.x"))
    assert failure.value.response is not None
    assert failure.value.response.status_code == 400
    assert failure.value.response.json()["msg"].startswith(message)
    assert "nope" not in [c.name for c in iw.codes()]


def _zip(files: dict[str, str]) -> bytes:
    from mayfly.core.codes import zip_bytes

    return zip_bytes(dict(files))
