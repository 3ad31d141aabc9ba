"""One self-contained HTML page that runs an anywidget module on fixed data, offline.

The explorer (`autodiff.viz.explore`) and the training view (`nn.TrainingView`) save
their pages through it; it lives in `autodiff.viz` so that the core never imports `nn`.
"""

from __future__ import annotations

import json
import math
from html import escape


def json_safe(data):
    """`data` with NaN and infinities as null (JSON has no spelling for them)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def _script_safe(text: str) -> str:
    # nothing inside a <script> element may close it
    return text.replace("</", "<\\/")


def standalone_page(title: str, esm: str, data: dict) -> str:
    """An HTML page that imports the module `esm` from a blob URL and renders it with a
    model that answers `get`/`on` from `data` (no network, no server: works from file://)."""
    data_json = json.dumps(json_safe(data), allow_nan=False)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 16px; }} .adl-chart {{ display: inline-block; }}</style>
</head><body>
<h2>{escape(title)}</h2>
<div id="view"></div>
<script type="module">
const source = {_script_safe(json.dumps(esm))};
const state = {{ data: {_script_safe(data_json)} }};
const model = {{ get: (k) => state[k], set: (k, v) => {{ state[k] = v; }}, on: () => {{}},
                 off: () => {{}}, save_changes: () => {{}} }};
const url = URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
const mod = (await import(url)).default;
mod.render({{ model, el: document.getElementById("view") }});
</script>
</body></html>
"""
