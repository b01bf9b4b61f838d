"""catalogue.py: the packaged catalogue keeps today's behaviour; a file is read whole and any
mistake is named with its file, line and problem."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from services.common import catalogue
from services.common.catalogue import CatalogueError
from services.common.config import DEFAULT_DATA_PLANE_ID, load_settings

GOOD = """\
[[data_planes]]
id = "dp-all"
companies = ["*"]

[[data_planes]]
id = "dp-acme"
companies = [7, 8]

[[clusters]]
name = "shared"
provider = "bedrock"
companies = ["*"]

[[clusters]]
name = "snowflake"
provider = "cortex"
base_url = "https://acme.snowflakecomputing.com/"
token_env = "SNOWFLAKE_PAT"
companies = [7]
runner_concurrency = 4

[[clusters]]
name = "local"
provider = "openai"
base_url = "http://127.0.0.1:8000/v1"
companies = ["*"]
titling_model = "llama"

[[models]]
id = "anthropic.claude-opus-4.6"
bedrock = "us.anthropic.claude-opus-4-6-v1"
cortex = "claude-opus-4-6"
[models.price]
input_per_mtok = 5.0
output_per_mtok = 25
cache_read_per_mtok = 0.5
as_of = "2026-11-01"

[[models]]
id = "llama"
openai = "meta-llama/Llama-3.1-8B-Instruct"
"""


def test_the_packaged_catalogue_is_todays_behaviour() -> None:
    packaged = catalogue.load()
    assert packaged.default_data_plane_id == DEFAULT_DATA_PLANE_ID
    assert list(packaged.clusters) == ["shared"]
    shared = packaged.clusters["shared"]
    assert shared.provider == "bedrock" and shared.companies.everyone
    assert list(packaged.models) == [
        "anthropic.claude-opus-4.6",
        "anthropic.claude-sonnet-4.5",
        "anthropic.claude-haiku-4.5",
        "amazon.nova-pro",
    ]
    assert packaged.provider_model_id("anthropic.claude-opus-4.6", shared) == (
        "us.anthropic.claude-opus-4-6-v1"
    )
    assert packaged.titling_model(shared, "amazon.nova-pro") == (
        "anthropic.claude-haiku-4.5",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    )


def test_default_data_plane_id_renames_the_packaged_data_plane() -> None:
    settings = load_settings(
        embedded=False,
        require_secrets=False,
        environ={"PARLEY_DEFAULT_DATA_PLANE_ID": "11111111-1111-4111-8111-111111111111"},
    )
    assert list(settings.catalogue.data_planes) == ["11111111-1111-4111-8111-111111111111"]
    assert settings.default_data_plane_id == "11111111-1111-4111-8111-111111111111"


def test_a_catalogue_file_replaces_the_packaged_one(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text(GOOD)
    settings = load_settings(
        embedded=False, require_secrets=False, environ={"PARLEY_CATALOGUE": str(path)}
    )
    c = settings.catalogue
    assert c.source == str(path) and c.default_data_plane_id == "dp-all"
    assert c.clusters["snowflake"].base_url == "https://acme.snowflakecomputing.com"  # no "/"
    assert c.clusters["snowflake"].runner_concurrency == 4
    price = c.models["anthropic.claude-opus-4.6"].price
    assert price == catalogue.Price(5.0, 25.0, 0.5, None, date(2026, 11, 1))
    assert c.models["llama"].price is None


def test_companies_see_only_their_data_planes_clusters_and_models() -> None:
    c = catalogue.parse(GOOD, "c.toml")
    assert c.data_plane_for("dp-acme", 7) is not None and c.data_plane_for("dp-acme", 1) is None
    assert c.data_plane_for("nowhere", 7) is None
    assert [x.name for x in c.clusters_of(1)] == ["shared", "local"]
    assert [x.name for x in c.clusters_of(7)] == ["shared", "snowflake", "local"]
    by_model = {u.model.id: [x.name for x in u.clusters] for u in c.usable_models(1)}
    assert by_model == {"anthropic.claude-opus-4.6": ["shared"], "llama": ["local"]}
    local = c.clusters["local"]
    assert c.titling_model(local, "llama") == ("llama", "meta-llama/Llama-3.1-8B-Instruct")
    assert c.titling_model(c.clusters["snowflake"], "anthropic.claude-opus-4.6") == (
        "anthropic.claude-opus-4.6",
        "claude-opus-4-6",
    )  # no titling_model: the run's own model


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (edit('provider = "cortex"', 'provider = "vertex"'), 16, "unknown provider `vertex`"),
        (edit('name = "local"', 'name = "shared"'), 23, "cluster `shared` is listed twice"),
        (edit('id = "dp-acme"', 'id = "dp-all"'), 6, "data plane `dp-all` is listed twice"),
        (edit('id = "llama"', 'id = "anthropic.claude-opus-4.6"'), 40, "listed twice"),
        (edit('base_url = "http://127.0.0.1:8000/v1"\n', ""), 22, "needs a base_url"),
        (edit('token_env = "SNOWFLAKE_PAT"\n', ""), 14, "needs token_env"),
        (edit('token_env = "SNOWFLAKE_PAT"', 'token_env = "not a name"'), 18, "environment"),
        (edit('base_url = "http://127.0.0.1:8000/v1"', 'base_url = "ftp://x"'), 25, "http(s)"),
        (edit('companies = [7]\n', "companies = []\n"), 19, "non-empty list of company ids"),
        (edit('companies = [7, 8]', 'companies = ["acme"]'), 7, "company ids"),
        (edit('name = "shared"\nprovider', 'name = "shared"\nbase_url = "http://x"\nprovider'), 11,
         "takes no base_url"),
        (edit('runner_concurrency = 4', "runner_concurrency = 0"), 20, "runner_concurrency"),
        (edit('titling_model = "llama"', 'max_tokens_field = "n_predict"'), 27,
         "max_tokens_field is for openai clusters"),
        (edit('titling_model = "llama"', 'titling_model = "gpt-5"'), 27, "not a catalogued"),
        (edit('bedrock = "us.anthropic.claude-opus-4-6-v1"', 'vertex = "x"'), 31,
         "unknown key `vertex` in a model"),
        (edit('openai = "meta-llama/Llama-3.1-8B-Instruct"', 'openai = ""'), 41, "non-empty"),
        (edit("input_per_mtok = 5.0", "input_per_mtok = -1"), 33, "input_per_mtok must be"),
        (edit('as_of = "2026-11-01"', 'as_of = "Nov 1"'), 33, "must be a date"),
        (edit('as_of = "2026-11-01"', 'as_of = "2026-11-01"\nvat = 0.2'), 33, "field `vat`"),
        (edit('as_of = "2026-11-01"\n', ""), 33, "needs as_of"),
        (edit("[[clusters]]\nname = \"local\"", "[[cluster]]\nname = \"local\""), None,
         "unknown section `cluster`"),
        (edit('name = "snowflake"', 'nmae = "snowflake"'), 15, "unknown key `nmae`"),
        (edit('id = "llama"\nopenai = "meta-llama/Llama-3.1-8B-Instruct"\n', 'id = "llama"\n'),
         39, "gives no provider id"),
        (edit('id = "dp-all"', "id = 1"), 2, "`id` must be a non-empty string"),
        ("models = 3\n", None, "no data_planes"),
        ("[[data_planes]\n", 1, "not valid TOML"),
    ],
)  # fmt: skip
def test_a_mistake_names_the_file_the_line_and_the_problem(
    text: str, line: int | None, problem: str
) -> None:
    with pytest.raises(CatalogueError) as raised:
        catalogue.parse(text, "/etc/parley/catalogue.toml")
    error = raised.value
    assert problem in error.problem, str(error)
    assert error.line == line, str(error)
    where = f"/etc/parley/catalogue.toml:{line}" if line else "/etc/parley/catalogue.toml"
    assert str(error).startswith(where + ": ")


def test_a_cluster_no_model_can_run_on_is_refused() -> None:
    text = GOOD.replace('openai = "meta-llama/Llama-3.1-8B-Instruct"', 'cortex = "llama3.1-8b"')
    text = text.replace('titling_model = "llama"\n', "")
    with pytest.raises(CatalogueError, match="no model gives a `openai` id"):
        catalogue.parse(text, "c.toml")


def test_an_unreadable_file_stops_start_up_with_its_name(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SystemExit, match=f"PARLEY_CATALOGUE: {missing}: cannot read it"):
        load_settings(
            embedded=False, require_secrets=False, environ={"PARLEY_CATALOGUE": str(missing)}
        )


def test_the_readmes_catalogues_are_valid() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        parsed = catalogue.parse(block, "README.md")
        assert parsed.clusters and parsed.models
