"""Every marked results table of README.md and docs/*.md is regenerated from its stored source under
experiments/results/ (experiments/doc_tables.py) and must equal it: a stale table, or a table with no registered
source, fails CI."""

import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
sys.path.insert(0, str(EXPERIMENTS))
import doc_tables  # noqa: E402

sys.path.remove(str(EXPERIMENTS))

MARKED = [(page, name) for page in doc_tables.pages() for name, _, _ in doc_tables.marked(page.read_text())]


@pytest.mark.parametrize("page, name", MARKED, ids=[f"{p.name}:{n}" for p, n in MARKED])
def test_a_docs_table_is_its_stored_source(page, name):
    assert name in doc_tables.TABLES, f"{page.name}: table {name!r} names no registered source"
    table = doc_tables.TABLES[name]
    text = page.read_text()
    [(start, end)] = [(s, e) for n, s, e in doc_tables.marked(text) if n == name][:1] or [(0, 0)]
    assert text[start:end] == table.render(table.load()), \
        f"{page.name}: {name} is stale; run {table.command}, then python experiments/doc_tables.py --write"


def test_every_registered_table_is_published_and_its_command_names_its_source():
    published = {name for _, name in MARKED}
    assert set(doc_tables.TABLES) <= published
    for table in doc_tables.TABLES.values():
        assert table.source in table.command and (doc_tables.RESULTS / table.source).is_file()


def test_a_stale_or_unregistered_table_is_named(tmp_path):
    (tmp_path / "docs").mkdir()
    results = tmp_path / "results"
    results.mkdir()
    source = doc_tables.TABLES["demo"].load()
    (results / "demo.json").write_text(__import__("json").dumps(source))
    table = doc_tables.TABLES["demo"].render(source)
    (tmp_path / "README.md").write_text(f"# x\n\n<!-- results: demo -->\n{table}\n<!-- /results -->\n\ntext\n")
    (tmp_path / "docs" / "a.md").write_text("<!-- results: nowhere -->\n| a |\n<!-- /results -->\n")
    problems = doc_tables.differences(tmp_path, results)
    assert problems == ["docs/a.md: table 'nowhere' names no registered source (experiments/doc_tables.py TABLES)"]
    stale = dict(source, unseen_rollout_mse_ratio_fernn_over_grnn=0.5)
    stale["models"] = {**source["models"], "grnn": {**source["models"]["grnn"], "rollout_mse_seen": 9.0}}
    (results / "demo.json").write_text(__import__("json").dumps(stale))
    assert any("'demo' differs" in p for p in doc_tables.differences(tmp_path, results))
    assert doc_tables.write(tmp_path, results) == [tmp_path / "README.md"]
    assert "9.0000" in (tmp_path / "README.md").read_text() and "text" in (tmp_path / "README.md").read_text()
