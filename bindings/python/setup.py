"""Bundles libember into the package when one is at hand at install time.

pyproject.toml holds the metadata; this only copies the shared library
($EMBER_LIBRARY, else the repository's build/libember.so.1) next to the
package modules, so an installed emberlm works without the build tree. With
no library found, the package installs without one and looks for libember at
import ($EMBER_LIBRARY, then the system's library path).
"""
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def find_library():
    env = os.environ.get("EMBER_LIBRARY")
    if env and Path(env).exists():
        return Path(env)
    lib = HERE.parent.parent / "build" / "libember.so.1"
    return lib if lib.exists() else None


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        lib = find_library()
        if lib is not None:
            dest = Path(self.build_lib) / "emberlm" / "libember.so.1"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lib.resolve(), dest)
            print(f"emberlm: bundled {lib}")
        else:
            print("emberlm: no libember found to bundle; it will be looked up at import")


setup(cmdclass={"build_py": BuildPyWithLibrary})
