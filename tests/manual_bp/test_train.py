"""The training loop, its helpers, ``python -m manual_bp``, the demo and the digits example."""

from __future__ import annotations

import importlib.util
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import train as train_mod
from manual_bp.__main__ import run as run_seed_task

ROOT = Path(__file__).resolve().parents[2]


def seed_setup(seed: int = 0, n: int = 200):
    gen = np.random.default_rng(seed)
    X, y = mbp.data.blobs(n, classes=2, rng=gen)
    model = mbp.Sequential(mbp.Linear(2, 3, rng=gen), mbp.ReLU(), mbp.Linear(3, 2, rng=gen))
    return model, mbp.SoftmaxCrossEntropy(), X, y


def quiet_fit(*args, **kw):
    return mbp.fit(*args, verbose=False, progress=False, **kw)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["MPLBACKEND"] = "Agg"
    return env


# ---------------------------------------------------------------- fit


def test_fit_solves_the_seed_task():
    out = run_seed_task(progress=False)  # blobs, seed 0, SGD(lr=0.5), 300 full-batch epochs
    assert out["accuracy"] >= 0.95
    hist = out["history"]
    assert hist.epochs == 300 and hist.steps == 300
    assert hist.loss[-1] < hist.loss[0] / 10


def test_history_lengths_and_steps():
    model, loss_fn, X, y = seed_setup()
    Xv, yv = mbp.data.blobs(50, classes=2, rng=1)
    hist = quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 7, batch_size=32, validation=(Xv, yv))
    assert hist.epochs == 7
    assert len(hist.loss) == len(hist.accuracy) == len(hist.val_loss) == len(hist.val_accuracy) == 7
    assert hist.steps == 7 * math.ceil(200 / 32)
    assert hist.seconds > 0
    assert hist.val_loss[-1] == pytest.approx(mbp.evaluate(model, loss_fn, Xv, yv).loss)


def test_without_validation_the_val_fields_are_none():
    model, loss_fn, X, y = seed_setup()
    hist = quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 2)
    assert hist.val_loss is None and hist.val_accuracy is None


def test_epoch_loss_is_the_loss_before_the_update():
    model, loss_fn, X, y = seed_setup()
    before = mbp.evaluate(model, loss_fn, X, y)
    hist = quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.5), X, y, 1)
    assert hist.loss[0] == pytest.approx(before.loss, rel=1e-12)
    assert hist.accuracy[0] == before.accuracy


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_minibatch_losses_combine_to_the_whole_set_loss(reduction):
    """With lr = 0 the parameters never move, so the epoch loss must equal the full-set loss."""
    model, _, X, y = seed_setup()
    loss_fn = mbp.SoftmaxCrossEntropy(reduction)
    hist = quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.0), X, y, 1, batch_size=7)  # uneven last batch
    full = mbp.evaluate(model, loss_fn, X, y)
    assert hist.loss[0] == pytest.approx(full.loss, rel=1e-12)
    assert hist.accuracy[0] == pytest.approx(full.accuracy)


def test_accuracy_kinds_follow_the_loss():
    gen = np.random.default_rng(0)
    X = gen.normal(size=(40, 3))
    t = (X[:, :1] > 0).astype(np.float64)  # (40, 1) binary targets
    model = mbp.Sequential(mbp.Linear(3, 1, rng=gen))
    hist = quiet_fit(model, mbp.BCEWithLogits(), mbp.SGD(model, lr=0.0), X, t, 1)
    assert hist.accuracy[0] == np.mean((mbp.predict(model, X) > 0) == (t > 0.5))  # threshold 0 on logits
    quiet_fit(model, mbp.BCEWithLogits(), mbp.Adam(model, lr=0.05), X, t, 50)
    assert mbp.evaluate(model, mbp.BCEWithLogits(), X, t).accuracy >= 0.95

    model = mbp.Sequential(mbp.Linear(3, 1, rng=gen))
    hist = quiet_fit(model, mbp.MSE(), mbp.SGD(model, lr=0.01), X, t, 3)
    assert hist.accuracy is None
    assert mbp.evaluate(model, mbp.MSE(), X, t).accuracy is None


@pytest.mark.parametrize("lr", [1e3, 1e6])
def test_non_finite_loss_names_epoch_and_step(lr):
    model, loss_fn, X, y = seed_setup()
    with pytest.raises(mbp.NonFiniteLossError, match=r"loss is (nan|inf) at epoch \d+, step 1 of 1") as err:
        quiet_fit(model, loss_fn, mbp.SGD(model, lr=lr), X, y, 500)
    assert isinstance(err.value, FloatingPointError) and isinstance(err.value, ValueError)
    assert "learning rate" in str(err.value)


def test_non_finite_loss_with_minibatches():
    gen = np.random.default_rng(0)
    X, t = gen.normal(size=(50, 3)), gen.normal(size=(50, 1))
    model = mbp.Sequential(mbp.Linear(3, 1, rng=gen))
    with pytest.raises(mbp.NonFiniteLossError, match=r"epoch \d+, step [1-5] of 5"):
        quiet_fit(model, mbp.MSE(), mbp.SGD(model, lr=10.0), X, t, 500, batch_size=10)


def test_bad_data_is_rejected_before_training():
    model, loss_fn, X, y = seed_setup()
    W = model.params["0.W"].copy()
    bad = X.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at row 17\)"):
        quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), bad, y, 5)
    with pytest.raises(ValueError, match="rows"):
        quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y[:-1], 5)
    with pytest.raises(ValueError, match="epochs"):
        quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 0)
    with pytest.raises(ValueError, match="batch_size"):
        quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 1, batch_size=0)
    with pytest.raises(ValueError, match="X_val contains NaN"):
        quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 1, validation=(bad, y))
    np.testing.assert_array_equal(model.params["0.W"], W)


def test_shuffling_is_deterministic_per_seed():
    def train(rng):
        model, loss_fn, X, y = seed_setup()
        hist = quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 5, batch_size=16, rng=rng)
        return hist.loss, model.params["2.W"].copy()

    loss_a, W_a = train(123)
    loss_b, W_b = train(123)
    loss_g, W_g = train(np.random.default_rng(123))
    loss_c, W_c = train(124)
    loss_none, _ = train(None)
    assert loss_a == loss_b == loss_g
    np.testing.assert_array_equal(W_a, W_b)
    np.testing.assert_array_equal(W_a, W_g)
    assert loss_a != loss_c and not np.array_equal(W_a, W_c)
    assert loss_none != loss_a  # no shuffling: a fixed order


def test_verbose_prints_about_ten_summaries(capsys):
    model, loss_fn, X, y = seed_setup()
    mbp.fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 100, verbose=True, progress=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert 10 <= len(lines) <= 12
    assert lines[0].startswith("epoch   1/100  loss") and "acc" in lines[0]
    assert lines[-1].startswith("epoch 100/100")


def test_progress_line_only_when_enabled(capsys, monkeypatch):
    monkeypatch.setattr(train_mod._Progress, "delay", 0.0)
    model, loss_fn, X, y = seed_setup()
    quiet_fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 3)
    assert capsys.readouterr().err == ""
    mbp.fit(model, loss_fn, mbp.SGD(model, lr=0.1), X, y, 3, verbose=False, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"epoch 1/3  step 1/1  loss [0-9.]+", err), err


def test_progress_redraws_in_place_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(train_mod._Progress, "delay", 0.0)
    monkeypatch.setattr(train_mod._Progress, "interval", 0.0)
    stream = Tty()
    bar = train_mod._Progress(True, 2, stream)
    bar.update(1, 1, 1, 0.5)
    bar.update(2, 1, 1, 0.25)
    bar.clear()
    text = stream.getvalue()
    assert text.count("\r") >= 3 and "\n" not in text and "loss 0.25" in text


# ---------------------------------------------------------------- helpers


def test_predict_evaluate_accuracy():
    model, loss_fn, X, y = seed_setup()
    z = mbp.predict(model, X)
    np.testing.assert_array_equal(mbp.predict(model, X, batch_size=33), z)
    assert model.training  # predict switches to eval mode and back
    acc = mbp.accuracy(z, y)
    assert acc == np.mean(z.argmax(1) == y)
    ev = mbp.evaluate(model, loss_fn, X, y)
    assert ev.accuracy == acc
    assert ev.loss == pytest.approx(float(loss_fn(z, y)))
    assert mbp.evaluate(model, loss_fn, X, y, batch_size=64).loss == pytest.approx(ev.loss, rel=1e-12)
    assert mbp.accuracy(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 0])) == 0.5
    with pytest.raises(ValueError, match="accuracy"):
        mbp.accuracy(z, y[:-1])


def test_fit_works_with_every_optimizer():
    for opt_cls, lr in ((mbp.SGD, 0.5), (mbp.Adam, 0.05), (mbp.AdamW, 0.05), (mbp.RMSprop, 0.01)):
        model, loss_fn, X, y = seed_setup(1)
        hist = quiet_fit(model, loss_fn, opt_cls(model, lr=lr), X, y, 100, batch_size=50, rng=0)
        assert hist.accuracy[-1] >= 0.95, opt_cls.__name__


# ---------------------------------------------------------------- command line and demo


@pytest.mark.subprocess
def test_python_m_manual_bp(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "manual_bp"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"final training accuracy: ([0-9.]+)", proc.stdout)
    assert m and float(m.group(1)) >= 0.95, proc.stdout
    assert "Sequential(Linear(2, 3), ReLU(), Linear(3, 2))" in proc.stdout
    seconds = float(re.search(r"([0-9.]+) s\)", proc.stdout).group(1))
    assert seconds < 10


def test_main_flags(capsys):
    from manual_bp.__main__ import main

    assert main(["--quiet", "--dataset", "xor", "--seed", "1", "--epochs", "1000", "--lr", "0.5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "xor, seed 1, lr 0.5, 1000 epochs" in out[0]
    assert float(re.search(r"accuracy: ([0-9.]+)", out[0]).group(1)) >= 0.95


def test_demo_headless(tmp_path, capsys):
    from manual_bp import demo

    assert demo.main(["--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    accs = [float(a) for a in re.findall(r"training accuracy ([0-9.]+)", out)]
    assert len(accs) == 2 and accs[1] >= 0.97  # the wide network fits the moons
    png = tmp_path / "decision_boundary.png"
    if importlib.util.find_spec("matplotlib") is None:
        assert demo.PLOT_HINT in out and not png.exists()
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_matplotlib_prints_the_hint(tmp_path, capsys, monkeypatch):
    from manual_bp import demo

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert demo.main(["--out", str(tmp_path), "--quiet"]) == 0
    assert "pip install manual-bp[examples]" in capsys.readouterr().out
    assert not (tmp_path / "decision_boundary.png").exists()


# ---------------------------------------------------------------- examples/digits.py


@pytest.mark.slow
def test_digits_example_reaches_97_percent():
    pytest.importorskip("sklearn", reason="examples/digits.py needs scikit-learn (manual-bp[examples])")
    spec = importlib.util.spec_from_file_location("digits_example", ROOT / "examples" / "digits.py")
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    result = digits.run_digits(seed=0)
    assert result["manual_bp"]["test_accuracy"] >= 0.97, result
    assert result["sklearn"]["test_accuracy"] >= 0.9, result


def test_backward_without_input_grad_gives_the_same_parameter_gradients():
    """Training skips dL/dX (fit passes input_grad=False): same grads, one product fewer."""
    rng = np.random.default_rng(4)
    model = mbp.Sequential(mbp.Linear(5, 4, rng=rng), mbp.Tanh(), mbp.Linear(4, 3, rng=rng))
    loss_fn = mbp.SoftmaxCrossEntropy()
    x, y = rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    full = {k: v.copy() for k, v in model.grads.items()}
    assert dx.shape == x.shape
    assert model.backward(loss_fn.backward(), input_grad=False) is None
    assert set(model.grads) == set(full)
    for k, v in full.items():
        np.testing.assert_array_equal(model.grads[k], v)
