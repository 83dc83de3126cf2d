"""IronWorker's runtime names (``runtime``, ``stack``, a zip's ``image``) as Mayfly runtimes.

IronWorker's clients upload a zip with ``runtime`` (``python``, ``node``, ``ruby``,
``sh``, ``binary``, ...) and ``file_name``; the deprecated ``stack`` named a
language and version (``ruby-2.1``, ``node-0.10``, ``python-3.2``). Each maps onto
a runtime Mayfly ships and the command that runs ``file_name`` on it. A language
Mayfly has no runtime for is refused with what to use instead, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mayfly.api.ironworker.errors import MissingField
from mayfly.core.errors import InvalidInput

PYTHON = "python-3.11"
SHELL = "shell"
NODE = "node-18"
RUBY = "ruby-3.1"

#: How each Mayfly runtime runs a ``file_name`` (a ``str.format`` template taking the quoted name).
RUNTIME_COMMANDS: dict[str, str] = {
    PYTHON: "python3 {}",
    SHELL: "sh {}",
    NODE: "node {}",
    RUBY: "ruby {}",
}

#: IronWorker's ``runtime`` names: the Mayfly runtime and how it runs ``file_name``.
LEGACY_RUNTIMES: dict[str, tuple[str, str]] = {
    "python": (PYTHON, RUNTIME_COMMANDS[PYTHON]),
    "python3": (PYTHON, RUNTIME_COMMANDS[PYTHON]),
    "node": (NODE, RUNTIME_COMMANDS[NODE]),
    "nodejs": (NODE, RUNTIME_COMMANDS[NODE]),
    "ruby": (RUBY, RUNTIME_COMMANDS[RUBY]),
    "sh": (SHELL, RUNTIME_COMMANDS[SHELL]),
    # IronWorker executed a binary worker itself (a static program or a script with a shebang).
    "binary": (SHELL, "./{}"),
}

#: Languages of IronWorker's ``runtime`` and ``stack`` names: the Mayfly runtime each runs on.
LANGUAGES: dict[str, str] = {"python": PYTHON, "node": NODE, "nodejs": NODE, "ruby": RUBY}

#: IronWorker runtimes Mayfly ships nothing for, and what to do instead.
UNAVAILABLE: dict[str, str] = {
    "go": "build a static binary and upload it with runtime 'binary'",
    "java": "register a Docker image with a JVM and the code ('image' without a file)",
    "scala": "register a Docker image with a JVM and the code ('image' without a file)",
    "mono": "register a Docker image with Mono and the code ('image' without a file)",
    "php": "register a Docker image with PHP and the code ('image' without a file)",
    "perl": "register a Docker image with Perl and the code ('image' without a file)",
}

#: What the shipped runtimes cover, for error messages.
RUNTIME_HELP = (
    "runtime 'python' or 'python3' (Mayfly's python-3.11), 'node' (node-18), 'ruby' (ruby-3.1), "
    "'sh' or 'binary' (Mayfly's shell), a Mayfly runtime name as runtime or stack, or a Docker image as 'image'"
)


@dataclass(frozen=True)
class RuntimeChoice:
    """The Mayfly runtime a legacy IronWorker upload runs on, and how it runs a ``file_name``."""

    runtime: str
    #: ``str.format`` template taking the quoted file name; None when the runtime has no known interpreter.
    template: str | None


def _unavailable(what: str, language: str) -> InvalidInput:
    return InvalidInput(f"{what}: Mayfly has no {language} runtime; {UNAVAILABLE[language]}")


def _from_stack(stack: str) -> RuntimeChoice:
    name = stack.strip().lower()
    if name in RUNTIME_COMMANDS:
        return RuntimeChoice(name, RUNTIME_COMMANDS[name])
    language, _, version = name.partition("-")
    if language == "python" and version.startswith("2"):
        raise InvalidInput(f"stack {stack!r}: Python 2 is not available; use stack 'python-3.11'")
    if language in LANGUAGES:
        runtime = LANGUAGES[language]
        return RuntimeChoice(runtime, RUNTIME_COMMANDS[runtime])
    if language in UNAVAILABLE:
        raise _unavailable(f"stack {stack!r}", language)
    # Any other Mayfly runtime named exactly (the caller checks that it exists).
    return RuntimeChoice(name, None)


def _from_runtime(runtime: str) -> RuntimeChoice:
    name = runtime.strip().lower()
    if name in LEGACY_RUNTIMES:
        return RuntimeChoice(*LEGACY_RUNTIMES[name])
    if name in UNAVAILABLE:
        raise _unavailable(f"runtime {runtime!r}", name)
    return RuntimeChoice(name, RUNTIME_COMMANDS.get(name))


def _from_image(image: str) -> RuntimeChoice:
    """IronWorker's "zip on a base image" (``iron/python``, ``iron/node``): Mayfly runs zips on its runtimes."""
    lowered = image.lower()
    for language, runtime in LANGUAGES.items():
        if language in lowered:
            return RuntimeChoice(runtime, RUNTIME_COMMANDS[runtime])
    raise InvalidInput(
        f"a zip on image {image!r} is not supported: upload the zip with runtime 'python', 'node', 'ruby' or 'sh' "
        "(or a Mayfly runtime as stack), or register an image that contains the code (image without a file)"
    )


def choose_runtime(runtime: str | None, stack: str | None, image: str | None) -> RuntimeChoice:
    """Map IronWorker's ``stack``, ``runtime`` or (for a zip on a base image) ``image`` to a Mayfly runtime."""
    if stack:
        return _from_stack(stack)
    if runtime:
        return _from_runtime(runtime)
    if image:
        return _from_image(image)
    raise MissingField(f"runtime, stack or image is required; use {RUNTIME_HELP}")


def choice_of(runtime: str) -> RuntimeChoice:
    """The choice of a code that already runs on Mayfly runtime ``runtime`` (a re-upload naming none)."""
    return RuntimeChoice(runtime, RUNTIME_COMMANDS.get(runtime))
