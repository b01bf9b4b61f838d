"""The model catalogue (models.toml): which public model ids exist and how to call each."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CatalogueModel:
    model: str
    provider: str
    provider_model_id: str


MODELS: dict[str, CatalogueModel] = {
    name: CatalogueModel(name, row["provider"], row["provider_model_id"])
    for name, row in tomllib.loads(Path(__file__).with_name("models.toml").read_text()).items()
}
