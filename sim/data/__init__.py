"""Scenarios the validation, assay and calibration code needs, shipped inside the package (also
linked from scenarios/ for users): `path(name)` finds them in any install, not only a checkout."""
from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """The packaged scenario `name` (e.g. "invitro_cytotoxicity.yaml")."""
    return Path(str(resources.files(__name__) / name))
