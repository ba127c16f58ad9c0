"""Curated schemas and dataset specs, shipped as package data.

One folder per dataset: ``schema.pbtxt`` (loaded by the SpecSchema component) and one
spec YAML per task group (see ``components.spec``).
"""

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def path(*parts: str) -> str:
    """Absolute path of a file shipped under ``schemas/``, e.g. ``path('census', 'group1.yaml')``."""
    full = os.path.join(_HERE, *parts)
    if not os.path.exists(full):
        raise FileNotFoundError(
            f"{os.path.join(*parts)!r} is not shipped under schemas/ ({_HERE}); "
            f"shipped: {sorted(os.listdir(_HERE))}."
        )
    return full
