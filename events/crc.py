"""CRC-32C (Castagnoli), the checksum of log frames: the `crc32c` package's C extension.

`import crc32c` runs the package's __init__, which imports importlib.metadata (email, zipfile,
csv) and scans every sys.path entry for its own version: 10-13 ms, more than the rest of
opening a log, paid by every `trustledger` command. The checksum itself is one function of
its C extension, `crc32c._crc32c`, which this module loads alone (the same file and module
name the package uses, so a later `import crc32c` finds it already loaded). If the package's
layout ever changes, the plain import is the fallback.

    from events.crc import crc32c
    crc32c.crc32c(data) -> int
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXTENSION = "crc32c._crc32c"


def _extension() -> ModuleType:
    if EXTENSION in sys.modules:
        return sys.modules[EXTENSION]
    package = importlib.util.find_spec("crc32c")  # finds the package, does not run it
    for where in (package.submodule_search_locations or []) if package else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(where) / f"_crc32c{suffix}"
            spec = importlib.util.spec_from_file_location(EXTENSION, path)
            if path.is_file() and spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[EXTENSION] = module
                return module
    import crc32c as whole

    return whole


crc32c = _extension()
