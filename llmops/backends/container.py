"""What every containerised backend shares: its name, the commands that clear and stop it, and
how llmops finds its processes (a container's processes are not children of the CLI we start).

A backend with `launcher: docker|podman` renders `ENGINE run --rm --name NAME ...`; the name is
llmops's own (or the user's `container_name`), so that the container can be stopped, removed and
measured by name, and so that the dead-man switch on the host can stop it when llmops is gone.
"""

from __future__ import annotations

import re

from llmops.shell import shell_word

ENGINES = ("docker", "podman")


def default_name(backend_name: str, port: int) -> str:
    return "llmops-" + re.sub(r"[^A-Za-z0-9_.-]", "-", backend_name) + f"-{port}"


def remove_command(engine: str, name: str) -> str:
    # A container left by a crashed run would make `--name` fail ("already in use").
    return f"{engine} rm -f {shell_word(name, reveal=True)} >/dev/null 2>&1 || true"


def stop_command(engine: str, name: str, timeout_s: float) -> str:
    # Killing the CLI does not stop a container; `stop -t` gives the server its shutdown time,
    # then the engine kills it.
    return f"{engine} stop -t {int(timeout_s)} {shell_word(name, reveal=True)} >/dev/null 2>&1 || true"


def digest_command(engine: str, image: str) -> str:
    """The image's identity: its registry digest when it came from one, else its local ID (an
    image built or imported here has no RepoDigests)."""
    img = shell_word(image, reveal=True)
    return (f"{engine} image inspect --format '{{{{if .RepoDigests}}}}{{{{index .RepoDigests 0}}}}"
            f"{{{{else}}}}{{{{.Id}}}}{{{{end}}}}' {img}")
