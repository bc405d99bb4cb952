"""Follow an `llmops docs` document as a person would: run its provisioning blocks in order.

Usage: python tests/setupdoc_follow.py DOC.md HOST   (run with HOME set to the fresh folder)
Only the ```sh blocks under the host's "### Provisioning" heading are run, each with bash, and the
script stops at the first one that fails.
"""

from __future__ import annotations

import re
import subprocess
import sys


def provisioning_blocks(text: str, host: str) -> list[str]:
    section = text.split(f"## Host {host}\n", 1)[1]
    section = re.split(r"^## Host ", section, flags=re.M)[0]
    prov = section.split("### Provisioning\n", 1)[1]
    prov = re.split(r"^### ", prov, flags=re.M)[0]
    return re.findall(r"^```sh\n(.*?)^```$", prov, flags=re.M | re.S)


def main() -> int:
    text = open(sys.argv[1], encoding="utf-8").read()
    for i, block in enumerate(provisioning_blocks(text, sys.argv[2]), 1):
        print(f"--- block {i}", flush=True)
        rc = subprocess.run(["bash", "-c", block]).returncode
        if rc != 0:
            print(f"block {i} failed with exit {rc}", flush=True)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
