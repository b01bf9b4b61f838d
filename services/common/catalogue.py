"""The catalogue: data planes and execution clusters with the companies that may use them, and
models with their id on each provider and an optional dated price. It is PARLEY_CATALOGUE's TOML
file, else the packaged catalogue.toml; it is checked whole when loaded, and a mistake stops the
process with the file, the line and the problem (`CatalogueError`)."""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

PACKAGED: Final = Path(__file__).with_name("catalogue.toml")
PROVIDERS: Final[tuple[str, ...]] = ("bedrock", "cortex", "openai")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # a cluster: a metric label, a k8s name
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECTIONS = ("data_planes", "clusters", "models")
_DATA_PLANE_KEYS = frozenset({"id", "companies"})
_CLUSTER_KEYS = frozenset(
    {
        "name",
        "provider",
        "companies",
        "base_url",
        "token_env",
        "api_key_env",
        "runner_concurrency",
        "titling_model",
        "max_tokens_field",
    }
)
MAX_TOKENS_FIELDS: Final = ("max_tokens", "max_completion_tokens")
_MODEL_KEYS = frozenset({"id", "price", *PROVIDERS})
_PRICE_RATES = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")
_PRICE_REQUIRED = ("input_per_mtok", "output_per_mtok", "as_of")


class CatalogueError(Exception):
    """A catalogue Parley cannot run with: `str()` is `<file>:<line>: <problem>`."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {problem}")
        self.source, self.line, self.problem = source, line, problem


@dataclass(frozen=True)
class Companies:
    """Who may use a data plane or a cluster: every company (`["*"]`) or the listed ids."""

    ids: frozenset[int] = frozenset()
    everyone: bool = False

    def allow(self, company_id: int) -> bool:
        return self.everyone or company_id in self.ids


@dataclass(frozen=True)
class DataPlane:
    id: str
    companies: Companies


@dataclass(frozen=True)
class Cluster:
    """An execution cluster: the runner pool that calls one provider."""

    name: str
    provider: str  # bedrock | cortex | openai
    companies: Companies
    base_url: str = ""  # cortex, openai
    token_env: str = ""  # cortex: the variable holding the programmatic access token
    api_key_env: str = ""  # openai: the variable holding the API key, when the server wants one
    runner_concurrency: int | None = None  # runs of this cluster one runner executes at once
    titling_model: str | None = None  # names conversations; None: the run's own model
    max_tokens_field: str = "max_tokens"  # openai: the server's name for the reply's cap


@dataclass(frozen=True)
class Price:
    """USD per million tokens, in force from `as_of`."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None
    cache_write_per_mtok: float | None
    as_of: date

    def cost_nano_usd(self, prompt: int, completion: int, cache_read: int, cache_write: int) -> int:
        """What these tokens cost, in nano-USD (an integer: sums of stored costs stay exact).
        Cache tokens without a cache rate of their own are charged as input."""
        read = self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        write = (
            self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        )
        # USD per million tokens is nano-USD per thousandth of a token: rate x 1000 per token.
        total = sum(
            (
                Decimal(str(rate)) * 1000 * tokens
                for rate, tokens in (
                    (self.input_per_mtok, prompt),
                    (self.output_per_mtok, completion),
                    (read, cache_read),
                    (write, cache_write),
                )
            ),
            Decimal(0),
        )
        return int(total.to_integral_value(ROUND_HALF_UP))


@dataclass(frozen=True)
class Model:
    id: str
    provider_ids: Mapping[str, str]  # provider -> the provider's own model id
    price: Price | None = None  # the newest of `prices`
    prices: tuple[Price, ...] = ()  # every dated price, oldest first

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(p for p in PROVIDERS if p in self.provider_ids)

    def price_in_force(self, at: datetime) -> Price | None:
        """The price whose `as_of` is the latest on or before `at`'s UTC day; None before the
        first one (or with none)."""
        day = (at if at.tzinfo is None else at.astimezone(UTC)).date()
        found = None
        for price in self.prices or ((self.price,) if self.price else ()):
            if price.as_of <= day:
                found = price
        return found


@dataclass(frozen=True)
class UsableModel:
    """A model as one company sees it: the clusters it may run it on."""

    model: Model
    clusters: tuple[Cluster, ...]


@dataclass(frozen=True)
class Catalogue:
    source: str
    data_planes: Mapping[str, DataPlane]
    clusters: Mapping[str, Cluster]
    models: Mapping[str, Model]
    # the first data plane: the one `parley up` prints and Bedrock endpoints resolve for
    default_data_plane_id: str = field(default="")

    def data_plane_for(self, data_plane_id: str, company_id: int) -> DataPlane | None:
        """The data plane when it exists and the company may use it (else None: the same
        answer for both, so a company learns nothing of another's)."""
        plane = self.data_planes.get(data_plane_id)
        return plane if plane is not None and plane.companies.allow(company_id) else None

    def cluster_for(self, name: str, company_id: int) -> Cluster | None:
        cluster = self.clusters.get(name)
        return cluster if cluster is not None and cluster.companies.allow(company_id) else None

    def clusters_of(self, company_id: int) -> list[Cluster]:
        return [c for c in self.clusters.values() if c.companies.allow(company_id)]

    def provider_model_id(self, model_id: str, cluster: Cluster) -> str | None:
        """The model's id on the cluster's provider, or None when it has none there."""
        model = self.models.get(model_id)
        return None if model is None else model.provider_ids.get(cluster.provider)

    def usable_models(self, company_id: int) -> list[UsableModel]:
        """The models the company can run: those with an id on a cluster it may use."""
        clusters = self.clusters_of(company_id)
        usable = []
        for model in self.models.values():
            on = tuple(c for c in clusters if c.provider in model.provider_ids)
            if on:
                usable.append(UsableModel(model, on))
        return usable

    def titling_model(self, cluster: Cluster, run_model: str) -> tuple[str, str] | None:
        """(model, its id on the cluster's provider) that names conversations on `cluster`:
        its `titling_model`, else the run's own model."""
        model_id = cluster.titling_model or run_model
        provider_id = self.provider_model_id(model_id, cluster)
        return None if provider_id is None else (model_id, provider_id)


# --- loading ------------------------------------------------------------------------------------


def load(path: str | Path | None = None, *, default_data_plane_id: str | None = None) -> Catalogue:
    """The catalogue at `path`, else the packaged one (whose data plane
    `default_data_plane_id` renames, for PARLEY_DEFAULT_DATA_PLANE_ID). Raises CatalogueError."""
    if path:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError(source, None, f"cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CatalogueError(source, None, "it is not UTF-8 text") from None
        return parse(text, source)
    catalogue = packaged()
    if default_data_plane_id and default_data_plane_id != catalogue.default_data_plane_id:
        (plane,) = catalogue.data_planes.values()  # the packaged catalogue has one
        planes = {default_data_plane_id: DataPlane(default_data_plane_id, plane.companies)}
        catalogue = replace(
            catalogue, data_planes=planes, default_data_plane_id=default_data_plane_id
        )
    return catalogue


@functools.cache
def packaged() -> Catalogue:
    return parse(PACKAGED.read_text(encoding="utf-8"), str(PACKAGED))


def parse(text: str, source: str) -> Catalogue:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise CatalogueError(
            source, int(line.group(1)) if line else None, f"not valid TOML: {exc}"
        ) from None
    return _Reader(text, source).catalogue(document)


class _Reader:
    """Reads a parsed document, finding in the text the line of whatever it refuses."""

    def __init__(self, text: str, source: str) -> None:
        self._lines = text.splitlines()
        self._source = source

    def fail(
        self, problem: str, section: str | None = None, index: int = 0, key: str = ""
    ) -> NoReturn:
        raise CatalogueError(self._source, self._line(section, index, key), problem)

    def _line(self, section: str | None, index: int, key: str) -> int | None:
        """The line of the `index`-th `[[section]]` (or of `key` inside it): TOML parsers keep
        no positions, so the text is searched. None when the table is written another way."""
        if section is None:
            pattern = re.compile(rf"^\s*{re.escape(key)}\s*=") if key else None
            for number, line in enumerate(self._lines, start=1):
                if pattern is not None and pattern.match(line):
                    return number
            return None
        header = re.compile(rf"^\s*\[\[\s*{re.escape(section)}\s*\]\]")
        starts = [n for n, line in enumerate(self._lines, start=1) if header.match(line)]
        if index >= len(starts):
            return None
        start = starts[index]
        if not key:
            return start
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        sub_table = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\.\s*{re.escape(key)}\s*\]")
        for number in range(start + 1, len(self._lines) + 1):
            line = self._lines[number - 1]
            if pattern.match(line) or sub_table.match(line):  # `key = …` or `[section.key]`
                return number
            if re.match(r"^\s*\[\[", line):
                break
        return start

    # --- the document -------------------------------------------------------------------------

    def catalogue(self, document: dict[str, Any]) -> Catalogue:
        for key in document:
            if key not in _SECTIONS:
                self.fail(
                    f"unknown section `{key}`: a catalogue has data_planes, clusters and models",
                    key=key,
                )
        tables = {name: self._tables(document, name) for name in _SECTIONS}
        models = self._models(tables["models"])
        data_planes = self._data_planes(tables["data_planes"])
        clusters = self._clusters(tables["clusters"], models)
        return Catalogue(
            self._source,
            data_planes,
            clusters,
            models,
            default_data_plane_id=next(iter(data_planes)),
        )

    def _tables(self, document: dict[str, Any], section: str) -> list[dict[str, Any]]:
        value = document.get(section)
        if value is None or value == []:
            self.fail(f"no {section}: a catalogue needs at least one [[{section}]] table")
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            self.fail(f"`{section}` must be an array of tables ([[{section}]])", key=section)
        return value

    def _keys(self, table: dict[str, Any], allowed: frozenset[str], section: str, i: int) -> None:
        for key in table:
            if key not in allowed:
                what = section.rstrip("s").replace("_", " ")
                self.fail(
                    f"unknown key `{key}` in a {what}; it takes: {', '.join(sorted(allowed))}",
                    section,
                    i,
                    key,
                )

    def _string(self, table: dict[str, Any], key: str, section: str, i: int) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(
                f"`{key}` must be a non-empty string", section, i, key if key in table else ""
            )
        return str(value)

    def _companies(self, table: dict[str, Any], section: str, i: int) -> Companies:
        value = table.get("companies")
        if value is None:
            self.fail(
                '`companies` is required: ["*"] for every company, or company ids', section, i
            )
        if value == ["*"]:
            return Companies(everyone=True)
        valid = isinstance(value, list) and value
        if not valid or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
            self.fail(
                '`companies` must be ["*"] (every company) or a non-empty list of company ids',
                section,
                i,
                "companies",
            )
        return Companies(ids=frozenset(value))

    def _data_planes(self, tables: list[dict[str, Any]]) -> dict[str, DataPlane]:
        planes: dict[str, DataPlane] = {}
        for i, table in enumerate(tables):
            self._keys(table, _DATA_PLANE_KEYS, "data_planes", i)
            plane_id = self._string(table, "id", "data_planes", i)
            if plane_id in planes:
                self.fail(f"data plane `{plane_id}` is listed twice", "data_planes", i, "id")
            planes[plane_id] = DataPlane(plane_id, self._companies(table, "data_planes", i))
        return planes

    def _clusters(
        self, tables: list[dict[str, Any]], models: dict[str, Model]
    ) -> dict[str, Cluster]:
        clusters: dict[str, Cluster] = {}
        for i, table in enumerate(tables):
            cluster = self._cluster(table, i, models)
            if cluster.name in clusters:
                self.fail(f"cluster `{cluster.name}` is listed twice", "clusters", i, "name")
            clusters[cluster.name] = cluster
        return clusters

    def _cluster(self, table: dict[str, Any], i: int, models: dict[str, Model]) -> Cluster:
        s = "clusters"
        self._keys(table, _CLUSTER_KEYS, s, i)
        name = self._string(table, "name", s, i)
        if not _NAME.match(name):
            self.fail(
                f"cluster name `{name}` must be 1-64 letters, digits, `_`, `.` or `-`, "
                "starting with a letter or digit",
                s,
                i,
                "name",
            )
        provider = self._string(table, "provider", s, i)
        if provider not in PROVIDERS:
            self.fail(
                f"cluster `{name}`: unknown provider `{provider}`; one of {', '.join(PROVIDERS)}",
                s,
                i,
                "provider",
            )
        companies = self._companies(table, s, i)
        base_url = ""
        if provider == "bedrock":
            if "base_url" in table:
                self.fail(
                    f"cluster `{name}` (bedrock) takes no base_url: Bedrock's endpoint comes from "
                    "the AWS configuration (AWS_REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME)",
                    s,
                    i,
                    "base_url",
                )
        else:
            if "base_url" not in table:
                self.fail(f"cluster `{name}` ({provider}) needs a base_url", s, i)
            base_url = self._url(table, name, i)
        token_env = self._env(table, "token_env", name, provider, "cortex", i)
        api_key_env = self._env(table, "api_key_env", name, provider, "openai", i)
        if provider == "cortex" and not token_env:
            self.fail(
                f"cluster `{name}` (cortex) needs token_env: the environment variable holding its "
                "programmatic access token",
                s,
                i,
            )
        concurrency = table.get("runner_concurrency")
        if concurrency is not None and (
            not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
        ):
            self.fail(
                f"cluster `{name}`: runner_concurrency must be a whole number >= 1",
                s,
                i,
                "runner_concurrency",
            )
        titling = table.get("titling_model")
        if titling is not None:
            titling = self._string(table, "titling_model", s, i)
            model = models.get(titling)
            if model is None or provider not in model.provider_ids:
                why = "is not a catalogued model" if model is None else f"has no {provider} id"
                self.fail(
                    f"cluster `{name}`: titling_model `{titling}` {why}", s, i, "titling_model"
                )
        max_tokens_field = table.get("max_tokens_field", "max_tokens")
        if "max_tokens_field" in table and (
            provider != "openai" or max_tokens_field not in MAX_TOKENS_FIELDS
        ):
            self.fail(
                f"cluster `{name}`: max_tokens_field is for openai clusters and is one of "
                + ", ".join(MAX_TOKENS_FIELDS),
                s,
                i,
                "max_tokens_field",
            )
        if not any(provider in m.provider_ids for m in models.values()):
            self.fail(
                f"cluster `{name}` ({provider}): no model gives a `{provider}` id, so no run "
                "could use it",
                s,
                i,
            )
        return Cluster(
            name,
            provider,
            companies,
            base_url,
            token_env,
            api_key_env,
            concurrency,
            titling,
            max_tokens_field,
        )

    def _url(self, table: dict[str, Any], name: str, i: int) -> str:
        url = self._string(table, "base_url", "clusters", i).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(
                f"cluster `{name}`: base_url `{url}` must be an absolute http(s) URL",
                "clusters",
                i,
                "base_url",
            )
        if parts.query or parts.fragment:
            self.fail(
                f"cluster `{name}`: base_url `{url}` takes no query or fragment",
                "clusters",
                i,
                "base_url",
            )
        return url

    def _env(
        self, table: dict[str, Any], key: str, name: str, provider: str, owner: str, i: int
    ) -> str:
        if key not in table:
            return ""
        if provider != owner:
            self.fail(
                f"cluster `{name}` ({provider}): `{key}` belongs to {owner} clusters",
                "clusters",
                i,
                key,
            )
        value = self._string(table, key, "clusters", i)
        if not _ENV_NAME.match(value):
            self.fail(
                f"cluster `{name}`: {key} `{value}` must be the name of an environment variable",
                "clusters",
                i,
                key,
            )
        return value

    def _models(self, tables: list[dict[str, Any]]) -> dict[str, Model]:
        models: dict[str, Model] = {}
        for i, table in enumerate(tables):
            for key in table:
                if key not in _MODEL_KEYS:
                    self.fail(
                        f"unknown key `{key}` in a model: a model gives `id`, its id under a "
                        f"provider's name ({', '.join(PROVIDERS)}) and an optional `price`",
                        "models",
                        i,
                        key,
                    )
            model_id = self._string(table, "id", "models", i)
            if model_id in models:
                self.fail(f"model `{model_id}` is listed twice", "models", i, "id")
            ids: dict[str, str] = {
                p: self._string(table, p, "models", i) for p in PROVIDERS if p in table
            }
            if not ids:
                self.fail(
                    f"model `{model_id}` gives no provider id: add one of "
                    f"{', '.join(f'{p} = …' for p in PROVIDERS)}",
                    "models",
                    i,
                )
            # One dated price, or a list of them: a run is charged the one in force when it
            # started, so a new price does not rewrite history.
            given = table.get("price")
            listed = given if isinstance(given, list) else [] if given is None else [given]
            prices = sorted((self._price(p, model_id, i) for p in listed), key=lambda p: p.as_of)
            if len({p.as_of for p in prices}) != len(prices):
                self.fail(f"model `{model_id}`: two prices as of the same day", "models", i)
            models[model_id] = Model(model_id, ids, prices[-1] if prices else None, tuple(prices))
        return models

    def _price(self, value: Any, model_id: str, i: int) -> Price:
        def bad(problem: str) -> NoReturn:
            self.fail(f"model `{model_id}`: price {problem}", "models", i, "price")

        if not isinstance(value, dict):
            bad("must be a table: { input_per_mtok = …, output_per_mtok = …, as_of = … }")
        for key in value:
            if key not in (*_PRICE_RATES, "as_of"):
                bad(f"has an unknown field `{key}`; it takes {', '.join(_PRICE_RATES)}, as_of")
        missing = [k for k in _PRICE_REQUIRED if k not in value]
        if missing:
            bad(f"needs {', '.join(missing)}")
        rates: dict[str, float | None] = {}
        for key in _PRICE_RATES:
            rate = value.get(key)
            if rate is not None and (
                isinstance(rate, bool)
                or not isinstance(rate, int | float)
                or not math.isfinite(rate)
                or rate < 0
            ):
                bad(f"{key} must be a number >= 0 (USD per million tokens), got {rate!r}")
            rates[key] = None if rate is None else float(rate)
        as_of = value["as_of"]
        if isinstance(as_of, str):
            try:
                as_of = date.fromisoformat(as_of)
            except ValueError:
                bad(f'as_of `{as_of}` must be a date, "YYYY-MM-DD"')
        if not isinstance(as_of, date) or hasattr(as_of, "hour"):
            bad(f'as_of must be a date, "YYYY-MM-DD"; got {as_of!r}')
        return Price(
            rates["input_per_mtok"] or 0.0,
            rates["output_per_mtok"] or 0.0,
            rates["cache_read_per_mtok"],
            rates["cache_write_per_mtok"],
            as_of,
        )
