"""Shared fixtures: the library, the `ember` CLI and a real model it writes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent            # bindings/python
REPO = PACKAGE_ROOT.parent.parent     # the repository
sys.path.insert(0, str(PACKAGE_ROOT))  # test the package in this tree


def find_cli() -> Optional[str]:
    env = os.environ.get("EMBER_CLI")
    if env:
        return env
    for build in ("build", "build-release"):
        p = REPO / build / "ember"
        if p.exists():
            return str(p)
    return shutil.which("ember")


class Fixture:
    """A temporary directory with tiny.gguf (written by `ember make-model`),
    a corrupt file and a truncated copy."""

    def __init__(self) -> None:
        self.cli = find_cli()
        if not self.cli:
            raise RuntimeError("cannot find the `ember` CLI: build the project or set EMBER_CLI")
        self.dir = Path(tempfile.mkdtemp(prefix="emberlm-py-"))
        self.model = str(self.dir / "tiny.gguf")
        subprocess.run([self.cli, "--quiet", "make-model", self.model], check=True)
        self.corrupt = str(self.dir / "corrupt.gguf")
        Path(self.corrupt).write_bytes(b"this is not a GGUF file at all" * 10)
        self.truncated = str(self.dir / "truncated.gguf")
        data = Path(self.model).read_bytes()
        Path(self.truncated).write_bytes(data[: len(data) // 3])

    def cli_run(self, prompt: str, n: int, extra: List[str]) -> str:
        """Generated text of `ember run` (which goes through the C ABI)."""
        out = subprocess.run([self.cli, "--quiet", "run", "-m", self.model, "-p", prompt, "-n", str(n)] + extra,
                             check=True, capture_output=True).stdout.decode("utf-8")
        assert out.startswith(prompt) and out.endswith("\n"), out
        return out[len(prompt):-1]

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
