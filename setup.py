"""Package discovery for the source roots (metadata lives in pyproject.toml).

``cococxr/`` is the core; ``converters/``, ``pipelines/`` and ``configs/`` (the recipes)
sit at the top of the repository but install as ``cococxr.converters``,
``cococxr.pipelines`` and ``cococxr.configs``, so every package below them is found
here rather than listed by hand.
"""
from setuptools import find_packages, setup

ROOTS = {"cococxr": "cococxr", "cococxr.converters": "converters", "cococxr.pipelines": "pipelines",
         "cococxr.configs": "configs"}


def packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder) if f"{name}.{sub}" not in ROOTS]
    return sorted(set(found))


setup(packages=packages())
