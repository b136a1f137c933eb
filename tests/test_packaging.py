"""pyproject.toml lists every subpackage of distill_core (a wheel would silently leave out one it misses) and
installs the top-level sample_data/ inside the package; the requirements files name extras that exist."""
from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_every_subpackage_is_listed() -> None:
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "distill_core").rglob("__init__.py")}
    listed = set(SETUPTOOLS["packages"])
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == {"distill_core.sample_data"}


def test_sample_data_is_installed_inside_the_package() -> None:
    assert SETUPTOOLS["package-dir"] == {"distill_core.sample_data": "sample_data"}
    patterns = SETUPTOOLS["package-data"]["distill_core.sample_data"]
    shipped = {p.name for p in (ROOT / "sample_data").iterdir() if p.is_file()}
    covered = {name for name in shipped if any(fnmatch(name, pat) for pat in patterns)}
    assert covered == shipped, f"not installed: {shipped - covered}"


def test_requirements_install_this_project_with_existing_extras() -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    for name in ("requirements.txt", "requirements-lm.txt", "requirements-dist.txt"):
        lines = [ln for ln in (ROOT / name).read_text().splitlines() if ln and not ln.startswith("#")]
        assert lines and lines[0].startswith("-e .["), f"{name} should install this checkout editable"
        wanted = set(lines[0][len("-e .["):].rstrip("]").split(","))
        assert wanted <= extras, f"{name} names extras pyproject.toml lacks: {wanted - extras}"
        assert {"ui", "test"} <= wanted, name


def test_requirements_dist_extends_the_base_keeps_torch_and_ci_installs_it() -> None:
    def lines(name: str) -> list[str]:
        return [ln.strip() for ln in (ROOT / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]

    base, dist = lines("requirements.txt"), lines("requirements-dist.txt")
    assert dist[1:] == ["torch==2.13.0"] == base[1:]  # torch pinned again beside the editable install
    extras = {n: set(ls[0][len("-e .["):].rstrip("]").split(",")) for n, ls in (("base", base), ("dist", dist))}
    assert extras["dist"] == extras["base"] | {"dist"}
    deps = PYPROJECT["project"]["optional-dependencies"]["dist"]
    assert deps == ["ray[tune]>=2.50,<3"]  # bounded, and no torch of its own
    test_sh = (ROOT / "scripts/test.sh").read_text()
    assert "pip install -q -r requirements-dist.txt" in test_sh  # CI (.ci/run -> scripts/test.sh) tests on Ray
