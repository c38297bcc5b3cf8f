"""Puts liblessor into the package, so `pip install ./ffi/python` gives a package
that needs no LESSOR_LIBRARY.

The library is `$LESSOR_LIBRARY` when set (a liblessor.so you built or
installed), else built now from the lessor checkout this directory is in, with
`cargo build --release -p lessor-ffi` (`$CARGO`, `$CARGO_TARGET_DIR` honoured).
The wheel is then specific to this platform, as a wheel holding a shared
library must be.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))


def _library():
    given = os.environ.get("LESSOR_LIBRARY")
    if given:
        if not os.path.isfile(given):
            raise SystemExit(f"LESSOR_LIBRARY={given} is not a file: point it at a liblessor.so")
        return given
    if not os.path.isfile(os.path.join(CHECKOUT, "ffi", "Cargo.toml")):
        raise SystemExit(
            "no liblessor to put into the package: this is not inside a lessor checkout, and LESSOR_LIBRARY "
            "is not set. Set LESSOR_LIBRARY to a liblessor.so, or install from a checkout: pip install ./ffi/python"
        )
    cargo = os.environ.get("CARGO", "cargo")
    try:
        subprocess.run([cargo, "build", "--release", "-p", "lessor-ffi"], cwd=CHECKOUT, check=True)
    except FileNotFoundError:
        raise SystemExit(f"{cargo} not found: install Rust (https://rustup.rs), or set LESSOR_LIBRARY") from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"cargo build -p lessor-ffi failed (exit {e.returncode})") from None
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(CHECKOUT, "target"))
    return os.path.join(target, "release", "liblessor.so")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        destination = os.path.join(self.build_lib, "lessor", "liblessor.so")
        shutil.copyfile(_library(), destination)
        os.chmod(destination, 0o755)


class PlatformDistribution(Distribution):
    def has_ext_modules(self):
        # A shared library inside: the wheel is for this platform only.
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=PlatformDistribution)
