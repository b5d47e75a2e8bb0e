"""Package discovery (the metadata is in pyproject.toml).

``bench/`` installs with every subpackage found under it; the top-level folders ``baselines/``,
``methods/`` and ``datasets/`` install as ``bench.baselines``, ``bench.methods`` and
``bench.datasets`` (never as top-level modules that would shadow, e.g., HuggingFace's
``datasets``), with their subpackages. Nothing is listed by hand, so a new subpackage is never left
out of a wheel (``tests/test_wheel.py`` installs one and runs it).
"""

from setuptools import find_packages, setup

FOLDERS = {"bench.baselines": "baselines", "bench.methods": "methods", "bench.datasets": "datasets"}

packages = find_packages(include=["bench", "bench.*"])
package_dir = {"bench": "bench"}
for package, folder in FOLDERS.items():
    packages.append(package)
    package_dir[package] = folder
    for sub in find_packages(where=folder):
        packages.append(f"{package}.{sub}")
        package_dir[f"{package}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir, package_data={"bench": ["data/*.json"]})
