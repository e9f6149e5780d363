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


DOCS = sorted((ROOT / "docs").glob("*.md"))


def _without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, spaces to -."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _without_code(path.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_relative_links_in_the_docs_resolve(doc):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)

    assert not broken, f"{doc.name}: links to nothing: {broken}"
