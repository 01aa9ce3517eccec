"""eval/readme_tables.py: the README's result tables are generated from the reports they cite; the real README must
match its committed reports, and a changed report is caught."""
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


def test_the_readme_matches_its_reports():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- table from results/" in text
    assert readme_tables.regenerate(text, ROOT)[1] == []


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
