# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/reliability-tables.py: tables rendered between their markers, new ones appended, bad files
named with the field, --check telling an out-of-date document."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "reliability-tables.py"
spec = importlib.util.spec_from_file_location("reliability_tables", SCRIPT)
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)

DOC = "# Reliability\n\nintro\n\n<!-- BEGIN table:faults -->\nold\n<!-- END table:faults -->\n\nafter\n"


def write(directory, name, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / (name + ".json")).write_text(json.dumps(data))


def run(tmp_path, *extra):
    return tables.main(["--tables", str(tmp_path / "t"), "--doc", str(tmp_path / "doc.md")] + list(extra))


def test_tables_go_between_their_markers_and_new_ones_are_appended(tmp_path):
    (tmp_path / "doc.md").write_text(DOC)
    write(tmp_path / "t", "faults", {"title": "Faults", "columns": ["fault", "result"],
                                     "rows": [["a|b", "failed"], ["ok", None]]})
    write(tmp_path / "t", "kills", {"title": "Kills", "columns": ["point"], "rows": [["wave 1"]]})
    assert run(tmp_path, "--check") == 1
    assert run(tmp_path) == 0
    doc = (tmp_path / "doc.md").read_text()
    assert "old" not in doc and doc.startswith("# Reliability\n\nintro\n\n<!-- BEGIN table:faults -->\n_Faults_")
    assert "| a\\|b | failed |" in doc and "| ok |  |" in doc and "\n\nafter\n" in doc
    assert doc.rstrip().endswith("| wave 1 |\n<!-- END table:kills -->")
    assert run(tmp_path, "--check") == 0
    assert run(tmp_path) == 0 and (tmp_path / "doc.md").read_text() == doc


@pytest.mark.parametrize("data,words", [
    ({"columns": ["a"], "rows": []}, "title"),
    ({"title": "T", "columns": [], "rows": []}, "columns"),
    ({"title": "T", "columns": ["a", "b"], "rows": [["x"]]}, "rows[0]"),
    ([1, 2], "object"),
])
def test_a_bad_table_file_is_one_error_naming_the_field(tmp_path, capsys, data, words):
    (tmp_path / "doc.md").write_text(DOC)
    write(tmp_path / "t", "faults", data)
    assert run(tmp_path) == 2
    assert words in capsys.readouterr().err
    assert (tmp_path / "doc.md").read_text() == DOC


def test_one_marker_alone_is_an_error(tmp_path, capsys):
    (tmp_path / "doc.md").write_text("<!-- BEGIN table:faults -->\n")
    write(tmp_path / "t", "faults", {"title": "T", "columns": ["a"], "rows": []})
    assert run(tmp_path) == 2 and "only one of its two markers" in capsys.readouterr().err
