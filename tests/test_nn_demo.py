"""The moons example runs end to end and writes its files."""

import importlib.util
import pathlib

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "moons_demo.py"


def test_moons_demo_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    spec = importlib.util.spec_from_file_location("moons_demo", EXAMPLE)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.main(str(tmp_path))
    out = capsys.readouterr().out
    assert "identical predictions: True" in out and "scalar MLP step" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.95
    for name in ("moons_boundary.png", "moons_loss.png", "moons_mlp.safetensors"):
        assert (tmp_path / name).stat().st_size > 0
