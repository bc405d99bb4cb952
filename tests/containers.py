"""Real podman for the container tests: an image built here from files already on the machine
(never pulled), and the two things this sandbox needs before crun will start anything.

- cgroups: the host runs a hybrid v1/v2 layout with the hugetlb controller left on the v2 side;
  crun refuses that ("cgroups in hybrid mode not supported, drop all controllers from
  cgroupv2"). Mounting hugetlb as a v1 hierarchy (root only) moves it off v2.
- rlimits: crun may not set RLIMIT_NPROC/RLIMIT_NOFILE to podman's defaults here ("setrlimit:
  Operation not permitted"); lower limits given with --ulimit are accepted.

Each step is tried only when a plain `podman run` fails for that very reason, so on a normal
host nothing is changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _libs(binary: Path) -> list[Path]:
    out = _run(["ldd", str(binary)]).stdout
    found = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/") and Path(word).exists():
                found.append(Path(word))
    return found


def _rootfs_tar(files: dict[str, Path], dest: Path) -> Path:
    """A tar of `files` (path in the image -> file here), plus the folders a container needs."""
    with tarfile.open(dest, "w") as tar:
        for folder in ("tmp", "proc", "sys", "dev", "etc", "root"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        for inside, source in sorted(files.items()):
            tar.add(str(source.resolve()), arcname=inside.lstrip("/"), recursive=False)
    return dest


def probe_tar(tmp: Path) -> Path:
    return _rootfs_tar({"/bin/true": Path(shutil.which("true") or "/bin/true"),
                        **{str(p): p for p in _libs(Path(shutil.which("true") or "/bin/true"))}}, tmp / "probe.tar")


def prepare(tmp: Path) -> tuple[list[str] | None, str]:
    """Make podman usable here if it can be: (extra `run` args, or None and why not)."""
    if shutil.which("podman") is None:
        return None, "podman is not installed"
    rootfs = tmp / "probe-rootfs"
    if not rootfs.exists():
        with tarfile.open(probe_tar(tmp)) as tar:
            tar.extractall(rootfs)
    extra: list[str] = []
    for _ in range(3):
        done = _run(["podman", "run", "--rm", "--network", "none", *extra, "--rootfs", str(rootfs), "/bin/true"])
        if done.returncode == 0:
            return extra, ""
        err = done.stderr
        if "setrlimit" in err and not extra:
            extra = list(ULIMITS)
        elif "hybrid mode" in err and os.geteuid() == 0 and not os.path.ismount("/sys/fs/cgroup/hugetlb"):
            os.makedirs("/sys/fs/cgroup/hugetlb", exist_ok=True)
            _run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"])
        else:
            return None, f"podman cannot start a container here: {err.strip()[-300:]}"
    return None, "podman cannot start a container here"


def build_llama_image(server: Path, tag: str, tmp: Path) -> str:
    """`tag`: llama-server and the libraries it links, imported as an image (no registry)."""
    bindir = server.parent
    files = {f"/opt/llama/{p.name}": p for p in bindir.iterdir() if p.is_file()}
    for lib in _libs(server) + [Path(p) for p in ("/lib64/ld-linux-x86-64.so.2",) if Path(p).exists()]:
        files.setdefault(str(lib), lib)
    tar = _rootfs_tar(files, tmp / "llama-image.tar")
    done = _run(["podman", "import", "--change", 'ENTRYPOINT ["/opt/llama/llama-server"]',
                 "--change", "ENV LD_LIBRARY_PATH=/opt/llama", str(tar), tag], timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"podman import failed: {done.stderr}")
    return tag


def ours() -> list[str]:
    """Names of every container (running or not) that llmops named."""
    done = _run(["podman", "ps", "-a", "--format", "{{.Names}}"])
    return [n for n in done.stdout.split() if n.startswith("llmops-")]


def build_host_mount_image(tag: str, python: Path, tmp: Path) -> str:
    """An image of empty folders whose programs come from read-only mounts of this host's /usr,
    /etc and the given interpreter's prefix (vLLM's 2.7 GB venv is not worth copying into a tar)."""
    tar = tmp / "host-mount.tar"
    with tarfile.open(tar, "w") as out:
        for folder in ("tmp", "proc", "sys", "dev", "root", "usr", "etc", "run", "var", "var/tmp", "home"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder in ("tmp", "var/tmp") else 0o755
            out.addfile(info)
        for name in ("bin", "lib", "lib64", "sbin"):  # merged /usr, as on the host
            if os.path.islink(f"/{name}"):
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(f"/{name}")
                out.addfile(info)
    done = _run(["podman", "import", "--change", f'ENTRYPOINT ["{python}"]', str(tar), tag], timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"podman import failed: {done.stderr}")
    return tag


def host_mounts(*folders: str) -> list[str]:
    args: list[str] = []
    for folder in ("/usr", "/etc", *folders):
        args += ["-v", f"{folder}:{folder}:ro"]
    return args
