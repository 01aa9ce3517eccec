"""eval/readme_tables.py: the result tables of the README and docs/*.md are generated from the reports they cite; the
real files must match their committed reports, and a changed report is caught in either."""
import pytest
from conftest import ROOT

from eval import readme_tables
from utils.io import UserError

REPORT = """## Toy: models

| Method | HR@1 ↑ | HR@5 ↑ | DivRatio@5 ↑ |
|:---|---:|---:|---:|
| SFT | 0.1000 | 0.2000 | 0.3000 |
| SPRec it0 DPO | 0.1100 | 0.2100 | 0.3100 |

- notes

### Beyond accuracy at K=5

| Method | MRR@5 ↑ | Gini@5 ↓ |
|:---|---:|---:|
| SFT | 0.0500 | 0.9700 |
| SPRec it0 DPO | 0.0600 | 0.9600 |
"""


def test_the_readme_and_the_docs_match_their_reports():
    files = readme_tables.documents()
    assert files[0] == ROOT / "README.md" and ROOT / "docs" / "seeds.md" in files
    assert "<!-- table from results/" in files[0].read_text(encoding="utf-8")
    assert "<!-- table from ../results/" in (ROOT / "docs" / "seeds.md").read_text(encoding="utf-8")
    for f in files:
        assert readme_tables.regenerate(f.read_text(encoding="utf-8"), f.parent)[1] == [], f


def test_check_covers_the_docs_and_names_the_stale_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.md").write_text(REPORT)
    (tmp_path / "docs").mkdir()
    table = "<!-- table from {}; columns: HR@5 -->\n| Method | HR@5 ↑ |\n|---|---:|\n| SFT | {} |\n" \
            "| SPRec it0 DPO | 0.2100 |\n<!-- end table -->\n"
    (tmp_path / "README.md").write_text(table.format("results/r.md", "0.2000"))
    (tmp_path / "docs" / "study.md").write_text(table.format("../results/r.md", "0.1999"))
    monkeypatch.setattr(readme_tables, "ROOT", tmp_path)
    with pytest.raises(SystemExit) as e:
        readme_tables.run(check=True)
    assert e.value.code == 1 and "docs/study.md (../results/r.md)" in capsys.readouterr().err
    readme_tables.run()
    assert "| SFT | 0.2000 |" in (tmp_path / "docs" / "study.md").read_text()
    readme_tables.run(check=True)
    assert "every generated table of 2 file(s) matches its report" in capsys.readouterr().out


def test_a_table_is_rebuilt_from_its_report_and_a_change_is_caught(tmp_path):
    (tmp_path / "r.md").write_text(REPORT)
    readme = ("intro\n<!-- table from r.md; columns: HR@5, DivRatio@5; rows: SPRec it0 DPO -->\nstale\n"
              "<!-- end table -->\nafter\n")
    text, changed = readme_tables.regenerate(readme, tmp_path)
    assert changed == ["r.md"]
    assert text == ("intro\n<!-- table from r.md; columns: HR@5, DivRatio@5; rows: SPRec it0 DPO -->\n"
                    "| Method | HR@5 ↑ | DivRatio@5 ↑ |\n|---|---:|---:|\n| SPRec it0 DPO | 0.2100 | 0.3100 |\n"
                    "<!-- end table -->\nafter\n")
    assert readme_tables.regenerate(text, tmp_path)[1] == []
    (tmp_path / "r.md").write_text(REPORT.replace("0.2100", "0.2200"))
    assert readme_tables.regenerate(text, tmp_path)[1] == ["r.md"]


def test_columns_come_from_the_first_table_that_has_them_all(tmp_path):
    (tmp_path / "r.md").write_text(REPORT)
    text, _ = readme_tables.regenerate("<!-- table from r.md; columns: MRR@5, Gini@5 -->\n<!-- end table -->\n",
                                       tmp_path)
    assert "| Method | MRR@5 ↑ | Gini@5 ↓ |\n|---|---:|---:|\n| SFT | 0.0500 | 0.9700 |\n" in text
    with pytest.raises(UserError, match="no column"):  # one README table is made from one report table
        readme_tables.regenerate("<!-- table from r.md; columns: HR@5, Gini@5 -->\n<!-- end table -->\n", tmp_path)


def test_rows_come_from_the_first_table_that_has_them_all(tmp_path):
    """The report's greedy-against-constrained table repeats the first table's columns with other row labels: named
    rows pick it."""
    second = ("\n### Toy: greedy against constrained\n\n| Method | HR@5 ↑ |\n|:---|---:|\n"
              "| SFT, constrained | 0.4000 |\n")
    (tmp_path / "r.md").write_text(REPORT + second)
    text, _ = readme_tables.regenerate("<!-- table from r.md; columns: HR@5; rows: SFT, constrained -->\n"
                                       "<!-- end table -->\n", tmp_path)
    assert "| Method | HR@5 ↑ |\n|---|---:|\n| SFT, constrained | 0.4000 |\n" in text
    text, _ = readme_tables.regenerate("<!-- table from r.md; columns: HR@5; rows: SFT -->\n<!-- end table -->\n",
                                       tmp_path)
    assert "| SFT | 0.2000 |\n" in text


@pytest.mark.parametrize("marker, message", [
    ("<!-- table from r.md; columns: HR@10 -->", "no column HR@10"),
    ("<!-- table from r.md; columns: HR@5; rows: DPO it0 -->", "no row DPO it0"),
    ("<!-- table from missing.md; columns: HR@5 -->", "missing.md: no such report"),
])
def test_bad_markers_are_clear_errors(tmp_path, marker, message):
    (tmp_path / "r.md").write_text(REPORT)
    with pytest.raises(UserError, match=message):
        readme_tables.regenerate(f"{marker}\n<!-- end table -->\n", tmp_path)
    with pytest.raises(UserError, match="has no '<!-- end table -->' after it"):
        readme_tables.regenerate("<!-- table from r.md; columns: HR@5 -->\n", tmp_path)
