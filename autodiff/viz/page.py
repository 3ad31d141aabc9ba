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
    """JSON text that cannot end or confuse the <script> element it sits in: every `<`
    (only ever inside a string) as its escape, so neither `</script>` nor `<!--` appears."""
    return text.replace("<", "\\u003c")


def standalone_page(title: str, *parts: tuple) -> str:
    """An HTML page that imports each part's anywidget module `esm` from a blob URL and
    renders it, one below the other, with a model that answers `get`/`on` from the part's
    `data` (no network, no server: works from file://). `parts` are (esm, data) pairs.
    The modules load after the page's load event, so the page marks its body
    `data-rendered` once every part has drawn: what a script driving the page waits for."""
    if not parts:
        raise TypeError("standalone_page: give at least one (esm, data) part")
    parts_json = json.dumps([[esm, json_safe(data)] for esm, data in parts], allow_nan=False)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 16px; }} .adl-chart {{ display: inline-block; }}</style>
</head><body>
<h2>{escape(title)}</h2>
<div id="view"></div>
<script type="module">
const parts = {_script_safe(parts_json)};
for (const [source, data] of parts) {{
  const state = {{ data }};
  const model = {{ get: (k) => state[k], set: (k, v) => {{ state[k] = v; }}, on: () => {{}},
                   off: () => {{}}, save_changes: () => {{}} }};
  const url = URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
  const mod = (await import(url)).default;
  const el = document.createElement("div");
  document.getElementById("view").appendChild(el);
  mod.render({{ model, el }});
}}
document.body.dataset.rendered = "true";
</script>
</body></html>
"""
