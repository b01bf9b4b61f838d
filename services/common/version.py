"""Parley's version: the installed distribution's (pyproject.toml), for `parley --version`,
parley_build_info and the spans' service.version."""

from __future__ import annotations

import platform
from importlib import metadata

try:
    VERSION = metadata.version("parley")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"

PYTHON = platform.python_version()
