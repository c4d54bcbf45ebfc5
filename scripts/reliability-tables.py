# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render the reliability tables into docs/reliability.md.

Every test that produces a table writes ``tests/output/reliability/<table>.json``:
``{"title": "...", "columns": ["...", ...], "rows": [["...", ...], ...]}``. Each is rendered as a
Markdown table between ``<!-- BEGIN table:<table> -->`` and ``<!-- END table:<table> -->`` in the
document; a table whose markers are not there yet is appended in a section of its own. Tables
without a JSON file are left as they are. ``--check`` changes nothing and exits 1 when the document
is not up to date (CI). ``make reliability-tables`` runs the tests, then this script.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLES = REPO / "tests" / "output" / "reliability"
DOC = REPO / "docs" / "reliability.md"
NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class TableError(Exception):
    pass


def load(path):
    """A table file, checked: ``(name, title, columns, rows)``; TableError naming the file and field."""
    name = path.stem
    if not NAME.match(name):
        raise TableError("%s: the table name (file name) must be letters, digits, '_' or '-'" % path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TableError("%s: not JSON (%s)" % (path, exc)) from None
    if not isinstance(data, dict):
        raise TableError("%s: must be an object with title, columns and rows" % path)
    title, columns, rows = data.get("title"), data.get("columns"), data.get("rows")
    if not isinstance(title, str) or not title.strip():
        raise TableError("%s: title must be a non-empty string" % path)
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise TableError("%s: columns must be a non-empty list of strings" % path)
    if not isinstance(rows, list):
        raise TableError("%s: rows must be a list" % path)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise TableError("%s: rows[%d] must be a list of %d cells" % (path, i, len(columns)))
    return name, title.strip(), columns, rows


def cell(value):
    text = "" if value is None else (value if isinstance(value, str) else json.dumps(value))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def render(title, columns, rows):
    lines = ["_%s_" % cell(title), "", "| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join("---" for dummy in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update(doc, tables):
    """``doc`` with every table of ``tables`` (name -> rendered text) put between its markers."""
    for name, text in sorted(tables.items()):
        begin, end = "<!-- BEGIN table:%s -->" % name, "<!-- END table:%s -->" % name
        block = "%s\n%s\n%s" % (begin, text, end)
        if doc.count(begin) > 1 or doc.count(end) > 1:
            raise TableError("%s: the markers of table %s appear more than once" % (DOC.name, name))
        if begin in doc and end in doc:
            start, stop = doc.index(begin), doc.index(end) + len(end)
            if stop < start:
                raise TableError("%s: the END marker of table %s comes before its BEGIN" % (DOC.name, name))
            doc = doc[:start] + block + doc[stop:]
        elif begin in doc or end in doc:
            raise TableError("%s: table %s has only one of its two markers" % (DOC.name, name))
        else:
            doc = doc.rstrip("\n") + "\n\n## Table: %s\n\n%s\n" % (name, block)
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--tables", type=Path, default=TABLES, help="directory of <table>.json files (%(default)s)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document to update (%(default)s)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when the document is not up to date")
    args = parser.parse_args(argv)
    try:
        files = sorted(args.tables.glob("*.json")) if args.tables.is_dir() else []
        tables = {}
        for path in files:
            name, title, columns, rows = load(path)
            tables[name] = render(title, columns, rows)
        if not args.doc.is_file():
            raise TableError("%s: no such document" % args.doc)
        before = args.doc.read_text(encoding="utf-8")
        after = update(before, tables)
    except TableError as exc:
        print("reliability-tables: %s" % exc, file=sys.stderr)
        return 2
    if not tables:
        print("reliability-tables: no table files in %s (run the tests that write them: make reliability-tables)"
              % args.tables, file=sys.stderr)
        return 2
    if args.check:
        if after != before:
            print("reliability-tables: %s is not up to date with %s (run make reliability-tables)"
                  % (args.doc, ", ".join(sorted(tables))), file=sys.stderr)
            return 1
        print("reliability-tables: %s is up to date (%s)" % (args.doc, ", ".join(sorted(tables))))
        return 0
    if after != before:
        args.doc.write_text(after, encoding="utf-8")
    print("reliability-tables: %s %s (%s)" % ("updated" if after != before else "unchanged", args.doc,
                                              ", ".join(sorted(tables))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
