"""fit, evaluate, plots, and the end-to-end digits run."""

import os

import numpy as np
import pytest

import autodiff
import nn
from nn import optim


def test_fit_records_history_and_learns_xor(capsys):
    autodiff.manual_seed(0)
    X, y = nn.data.make_xor(200, noise=0.1)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    hist = nn.fit(net, nn.CrossEntropyLoss(), optim.Adam(net.parameters(), lr=0.05), X, y,
                  epochs=15, batch_size=32, validation=(X, y), progress=False)
    assert len(hist.loss) == len(hist.accuracy) == len(hist.val_loss) == 15
    assert hist.loss[-1] < hist.loss[0] and hist.val_accuracy[-1] >= 0.95
    assert "train" not in capsys.readouterr().err  # progress=False prints no bar


def test_fit_progress_bar_and_env(monkeypatch, capsys):
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    X, y = nn.data.make_moons(64)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    hist = nn.fit(net, nn.BCEWithLogitsLoss(), optim.SGD(net.parameters(), lr=0.1),
                  X, y.astype(float).reshape(-1, 1), epochs=2, batch_size=16,
                  desc="moons")
    err = capsys.readouterr().err
    assert "moons" in err and "2/2" in err
    assert len(hist.accuracy) == 2
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nn.fit(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.1), X,
           y.astype(float).reshape(-1, 1), epochs=1)
    assert "1/1" not in capsys.readouterr().err


def test_fit_with_scheduler_and_regression():
    X = np.linspace(-1, 1, 40).reshape(-1, 1)
    y = 3 * X - 1
    net = nn.Linear(1, 1)
    opt = optim.SGD(net.parameters(), lr=0.5)
    sched = optim.StepLR(opt, 5, gamma=0.5)
    hist = nn.fit(net, nn.MSELoss(), opt, X, y, epochs=20, batch_size=8, scheduler=sched,
                  progress=False)
    assert hist.accuracy == [] and hist.loss[-1] < 1e-4
    assert opt.param_groups[0]["lr"] == 0.5 * 0.5 ** 4


def test_accuracy_helper():
    assert nn.accuracy(np.array([[0.1, 0.9], [2.0, -1.0]]), [1, 1]) == 0.5
    assert nn.accuracy(np.array([0.7, 0.2]), [1, 0], threshold=0.5) == 1.0
    assert nn.accuracy(np.array([[-0.3], [0.4]]), np.array([0, 1])) == 1.0


def test_plots_write_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    env_before = os.environ.get("MPLBACKEND")
    X, y = nn.data.make_moons(40)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    hist = nn.fit(net, nn.CrossEntropyLoss(), optim.Adam(net.parameters(), lr=0.05), X, y,
                  epochs=3, progress=False)
    nn.plot_history(hist, tmp_path / "loss.png")
    nn.plot_decision_boundary(net, X, y, tmp_path / "boundary.png", resolution=50)
    nn.plot_history([3.0, 2.0, 1.0], tmp_path / "plain.png")
    for name in ("loss.png", "boundary.png", "plain.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.environ.get("MPLBACKEND") == env_before


def test_digits_mlp_reaches_95_percent():
    pytest.importorskip("sklearn")
    autodiff.manual_seed(0)
    Xtr, Xte, ytr, yte = nn.data.load_digits(test_size=0.2, seed=0)
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    nn.fit(net, nn.CrossEntropyLoss(), optim.Adam(net.parameters(), lr=1e-3), Xtr, ytr,
           epochs=20, batch_size=64, progress=False)
    _, test_accuracy = nn.evaluate(net, nn.CrossEntropyLoss(), Xte, yte)
    assert test_accuracy >= 0.95, test_accuracy


def _tiny_problem():
    X, y = nn.data.make_moons(10, seed=0)
    return X, y, nn.Sequential(nn.Linear(2, 2))


def test_fit_refuses_an_epoch_without_batches():
    X, y, net = _tiny_problem()
    with pytest.raises(ValueError, match="fit: no batch to train on: 10 samples"):
        nn.fit(net, nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.1), X, y,
               epochs=1, batch_size=32, drop_last=True, progress=False)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fit_and_evaluate_report_the_mean_loss_per_sample(reduction):
    X, y, net = _tiny_problem()
    loss_fn = nn.CrossEntropyLoss(reduction=reduction)
    want = nn.CrossEntropyLoss()(net(X), y).item()
    history = nn.fit(net, loss_fn, optim.SGD(net.parameters(), lr=0.0), X, y, epochs=1,
                     batch_size=4, shuffle=False, progress=False)
    assert history.loss[0] == pytest.approx(want)
    assert nn.evaluate(net, loss_fn, X, y, batch_size=3)[0] == pytest.approx(want)


def test_fit_accepts_class_probability_targets():
    X, y, net = _tiny_problem()
    history = nn.fit(net, nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.1), X,
                     np.eye(2)[y], epochs=2, batch_size=4, progress=False)
    assert len(history.accuracy) == 2 and 0.0 <= history.accuracy[-1] <= 1.0


def test_decision_boundary_colours_and_checks():
    pytest.importorskip("matplotlib")
    X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    y = np.array([0, 1, 2])
    fig = nn.plot_decision_boundary(lambda g: (g[:, 0] > 0.5).astype(int) + (g[:, 0] > 1.5),
                                    X, y, resolution=20, cmap="viridis")
    regions, points = fig.axes[0].collections[0], fig.axes[0].collections[-1]
    assert regions.get_cmap().name == points.get_cmap().name == "viridis"
    assert regions.norm.vmin == points.norm.vmin == 0 and regions.norm.vmax == points.norm.vmax == 2
    with pytest.raises(ValueError, match=r"plot_decision_boundary: X must be .* got shape \(3,\)"):
        nn.plot_decision_boundary(lambda g: g[:, 0], X[:, 0], y)
    with pytest.raises(ValueError, match=r"y must hold one label per point, shape \(3,\), got shape \(2,\)"):
        nn.plot_decision_boundary(lambda g: g[:, 0], X, y[:2])
    with pytest.raises(ValueError, match=r"resolution must be an int >= 2, got 1"):
        nn.plot_decision_boundary(lambda g: g[:, 0], X, y, resolution=1)
    with pytest.raises(ValueError, match=r"predict gave shape \(1,\) for 400 points"):
        nn.plot_decision_boundary(lambda g: np.zeros(1), X, y, resolution=20)
