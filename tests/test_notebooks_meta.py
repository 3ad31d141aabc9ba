"""The lecture notebooks 01-07 as committed: no outputs, projector-sized figures, checks kept
out of the teaching cells, exercises with folded solutions. (Running them is nbmake's job.)"""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("0[1-7]_*.ipynb"))


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_seven_lecture_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for cell in code_cells(load(path)):
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, source(cell)[:80]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_are_projector_sized(path):
    nb = load(path)
    setup = source(code_cells(nb)[0])
    dpi = re.search(r'"figure\.dpi":\s*(\d+)', setup)
    assert dpi and int(dpi.group(1)) >= 110, "the first code cell must set figure.dpi >= 110"
    font = re.search(r'"font\.size":\s*(\d+)', setup)
    assert font and int(font.group(1)) >= 11, "the first code cell must set font.size >= 11"
    for cell in code_cells(nb):
        text = source(cell)
        for size in re.findall(r"fontsize=(\d+)", text):
            assert int(size) >= 10, f"fontsize={size} is too small to project: {text[:80]}"
        for width in re.findall(r"figsize=\((\d+(?:\.\d+)?),", text):
            assert float(width) >= 7, f"figsize width {width} is too small: {text[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_asserts_only_in_the_final_checks_cell(path):
    cells = code_cells(load(path))
    checks = [c for c in cells if "checks" in tags(c)]
    assert len(checks) == 1 and cells[-1] is checks[0], "one cell tagged 'checks', the last one"
    assert checks[0]["metadata"].get("jupyter", {}).get("source_hidden") is True
    asserts_in_checks = [n for n in ast.walk(ast.parse(source(checks[0])))
                         if isinstance(n, ast.Assert)]
    assert len(asserts_in_checks) >= 5
    for cell in cells[:-1]:
        found = [n for n in ast.walk(ast.parse(source(cell))) if isinstance(n, ast.Assert)]
        assert not found, f"an assert in a teaching cell: {source(cell)[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_with_folded_solutions(path):
    nb = load(path)
    folded = [c for c in nb["cells"] if c["cell_type"] == "markdown"
              and "<details><summary>Solution</summary>" in source(c)]
    solutions = [c for c in code_cells(nb) if "solution" in tags(c)]
    assert 1 <= len(folded) <= 2 and len(solutions) == len(folded)
    assert all(c["metadata"].get("jupyter", {}).get("source_hidden") is True for c in solutions)
    assert any(source(c).startswith("## Exercises") for c in nb["cells"])
