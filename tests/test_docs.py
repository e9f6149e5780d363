"""The docs stay true to the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from churn.contract import ENTITIES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("entity", list(ENTITIES.values()), ids=list(ENTITIES))
def test_the_data_contract_doc_lists_every_column(entity):
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    section = doc.split(f"### {entity.name} ")[1].split("###")[0]
    rows = re.findall(r"^\| (\w+)( \*)? \|", section, flags=re.MULTILINE)
    documented = {name: star for name, star in rows if name != "column"}

    assert set(documented) == set(entity.columns)
    assert {name for name, star in documented.items() if star} == set(entity.required)


def test_the_feature_catalogue_doc_lists_every_feature():
    from churn.config import FeaturesConfig
    from features.snapshot import catalogue

    doc = (ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([^`]+)` \|", doc, flags=re.MULTILINE))

    assert documented == {f.name for f in catalogue(FeaturesConfig())}


@pytest.mark.parametrize("doc", ["README.md", "docs/training.md", "docs/alerts.md", "docs/scheduler.md"])
def test_the_config_shown_in_the_docs_is_the_default(doc):
    import yaml

    from churn.config import ProductConfig

    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)]
    defaults = ProductConfig().model_dump()

    for block in blocks:
        for section, values in block.items():
            # The README shows every setting; a topic's doc may show only the settings it is about.
            default = defaults[section]
            expected = (
                default if doc == "README.md" else {k: default.get(k, "<not a setting>") for k in values}
            )
            assert values == expected, f"{doc}: section {section!r} differs from the defaults"
    if doc == "README.md":
        assert {s for b in blocks for s in b} == set(defaults)
