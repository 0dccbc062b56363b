"""Check families, one module each. Importing this package registers every check.

Every public module here (no leading underscore) is imported, in alphabetical
order, so a new family only needs a new module. Nothing here imports pytest:
checks are plain functions ``(model, case, ctx, rng) -> Verdict`` (see
:mod:`conformance.core.registry`).
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
