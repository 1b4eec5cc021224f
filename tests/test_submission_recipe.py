"""Unit tests of the bundled submission's techniques (submission/), on tiny tensors.

The submission is a standalone folder (participants copy it out), so it is imported by path,
not as part of the harness package.
"""

import copy
import json
import os
import signal
import sys
import time
import types
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

SUBMISSION_DIR = Path(__file__).resolve().parents[1] / "submission"
sys.path.insert(0, str(SUBMISSION_DIR))
_sigterm = signal.getsignal(signal.SIGTERM)
import budget as sub_budget  # noqa: E402
import common as sub_common  # noqa: E402
import gradients as sub_gradients  # noqa: E402
import predict as sub_predict  # noqa: E402
import train as sub_train  # noqa: E402

signal.signal(signal.SIGTERM, _sigterm)  # train.py installs its stop-flag handler at import


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def tiny_batch(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def grads(params):
    return [p.grad.clone() for p in params]


# ---- SAM ----
def test_sam_restores_weights_and_differs_from_plain_gradient():
    model = tiny_model()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    batch = tiny_batch()
    sub_gradients.plain_grad(model, params, batch, F.cross_entropy)
    g_plain = grads(params)
    sub_gradients.sam_grad(model, params, batch, F.cross_entropy, rho=0.5)
    g_sam = grads(params)
    for p, b in zip(params, before):  # the probe step w + e is undone exactly
        assert torch.allclose(p, b, atol=1e-7)
    assert any(not torch.allclose(a, b) for a, b in zip(g_plain, g_sam))

    # ... and it is the gradient at w + rho * g / ||g||
    norm = torch.norm(torch.stack([g.norm() for g in g_plain]))
    probe = copy.deepcopy(model)
    with torch.no_grad():
        for p, g in zip(probe.parameters(), g_plain):
            p.add_(g * 0.5 / norm)
    F.cross_entropy(probe(batch[0]), batch[1]).backward()
    for p, g in zip(probe.parameters(), g_sam):
        assert torch.allclose(p.grad, g, atol=1e-6)


def test_sam_update_differs_from_sgd_update():
    batch = tiny_batch()
    results = []
    for use_sam in (False, True):
        model = tiny_model()
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=0.1)
        fn = (
            (lambda: sub_gradients.sam_grad(model, params, batch, F.cross_entropy, 0.5))
            if use_sam
            else (lambda: sub_gradients.plain_grad(model, params, batch, F.cross_entropy))
        )
        fn()
        opt.step()
        results.append([p.detach().clone() for p in params])
    assert any(not torch.allclose(a, b) for a, b in zip(*results))


# ---- Gradient centralization ----
def test_gradient_centralization_zero_mean_per_output_channel():
    conv = torch.nn.Parameter(torch.randn(4, 3, 3, 3))
    lin = torch.nn.Parameter(torch.randn(5, 7))
    bias = torch.nn.Parameter(torch.randn(5))
    for p in (conv, lin, bias):
        p.grad = torch.randn_like(p) + 3.0
    bias_grad = bias.grad.clone()
    sub_gradients.centralize_gradients([conv, lin, bias])
    assert torch.allclose(conv.grad.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-6)
    assert torch.allclose(lin.grad.mean(dim=1), torch.zeros(5), atol=1e-6)
    assert torch.equal(bias.grad, bias_grad)  # 1-D parameters are left alone


# ---- Patch whitening ----
def test_whitening_makes_patch_covariance_identity():
    g = torch.Generator().manual_seed(0)
    # correlated "images": smooth noise mixed across channels
    x = F.avg_pool2d(torch.randn(64, 3, 36, 36, generator=g), 5, stride=1)
    x = torch.einsum("ij,njhw->nihw", torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, 0.1], [0.0, 0.4, 1.0]]), x)
    w, b = sub_train.whitening_filters(x, eps=1e-8, max_images=64)
    assert w.shape == (27, 3, 3, 3) and b.shape == (27,)
    out = F.conv2d(x.double(), w.double(), b.double())  # valid: only full patches
    feats = out.permute(0, 2, 3, 1).reshape(-1, 27)
    cov = feats.T @ feats / (len(feats) - 1)
    assert torch.allclose(feats.mean(0), torch.zeros(27, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(cov, torch.eye(27, dtype=torch.float64), atol=2e-3)


def test_model_whiten_layer_is_frozen():
    model = sub_common.ResNet9(width=0.125, act="celu", whiten=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "whiten.weight" not in trainable and "whiten.bias" not in trainable
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1, 10)  # [batch, members, classes]


# ---- The lockstep ensemble: members are independent networks in one model ----
@pytest.mark.parametrize("whiten", [False, True])
def test_ensemble_members_compute_exactly_what_separate_networks_would(whiten):
    torch.manual_seed(0)
    k = 3
    ensemble = sub_common.ResNet9(width=0.125, act="celu", whiten=whiten, members=k).eval()
    x = torch.randn(4, 3, 32, 32)
    out = ensemble(x)
    assert out.shape == (4, k, 10)
    for member in range(k):  # carve member `member` out of every grouped tensor into a lone network
        alone = sub_common.ResNet9(width=0.125, act="celu", whiten=whiten).eval()
        state = {}
        for name, tensor in alone.state_dict().items():
            big = ensemble.state_dict()[name]
            if name.startswith("whiten") or tensor.dim() == 0:  # shared whitening, BN step counters
                state[name] = big
            else:
                state[name] = big.reshape(k, *tensor.shape)[member]
        alone.load_state_dict(state)
        assert torch.allclose(alone(x)[:, 0], out[:, member], atol=1e-5)
    # ... and each member starts from its own weights
    first = ensemble.fc.weight.reshape(k, -1)
    assert not torch.allclose(first[0], first[1])


def test_ensemble_loss_trains_each_member_at_a_lone_networks_rate():
    torch.manual_seed(0)
    ensemble = sub_common.ResNet9(width=0.125, members=2)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    out = ensemble(x)
    sub_gradients.scaled_cross_entropy(out, y, 0.0, 1.0).backward()
    grad = ensemble.fc.weight.grad.reshape(2, -1).clone()
    # member 0's gradient is exactly the gradient of its own mean loss
    ensemble.zero_grad()
    F.cross_entropy(ensemble(x)[:, 0], y).backward()
    assert torch.allclose(ensemble.fc.weight.grad.reshape(2, -1)[0], grad[0], atol=1e-6)
    assert torch.count_nonzero(ensemble.fc.weight.grad.reshape(2, -1)[1]) == 0  # nothing leaks across


# ---- The budget plan ----
def plan(monkeypatch, train_s, image_s_per_member=1e-3, predict_s=120.0, **settings):
    """plan_budget on the CPU path, the probe's answer fixed (seconds per image of one network)."""
    monkeypatch.setattr(sub_budget, "measure_image_s", lambda *a, **k: image_s_per_member)
    argv = ["--preset", "default", "--set", "width=0.5"]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    cfg = sub_train.make_config(argv)
    return sub_budget.plan_budget(cfg, torch.device("cpu"), torch.contiguous_format, 10, train_s, 5000, 128, predict_s)


def test_plan_leaves_a_budget_short_of_the_cap_to_the_clock(monkeypatch):
    # 5 s per epoch: a 150 s budget fits 30 epochs, under the cap of 40
    assert plan(monkeypatch, 150) == (0.5, 1, None)


def test_plan_spends_time_past_the_epoch_cap_on_more_members(monkeypatch):
    # 5 s per epoch per member: 1000 s fits 64 epochs for 3 members (960 s), not for 4
    assert plan(monkeypatch, 1000, epoch_cap=64) == (0.5, 3, 64)
    # max_members bounds it
    assert plan(monkeypatch, 1e6, epoch_cap=64, max_members=5) == (0.5, 5, 64)


def test_plan_keeps_prediction_within_its_share_of_the_predict_budget(monkeypatch):
    # 1e-3 s per image per member: predicting costs ~3.3 s per member; a third of 30 s allows 3
    assert plan(monkeypatch, 1e6, predict_s=30, max_members=8) == (0.5, 3, 40)
    # 25 s: a third allows 2
    assert plan(monkeypatch, 1e6, predict_s=25, max_members=8) == (0.5, 2, 40)


def test_the_plan_reads_the_predict_budget_the_harness_tells(monkeypatch):
    monkeypatch.setenv("HAET_PREDICT_BUDGET_S", "45")
    assert sub_budget.predict_budget_s(90) == 45
    monkeypatch.delenv("HAET_PREDICT_BUDGET_S")  # told nothing: the harness's default rule
    assert sub_budget.predict_budget_s(90) == 20 and sub_budget.predict_budget_s(600) == 60


def test_plan_obeys_explicit_members_and_epochs(monkeypatch):
    assert plan(monkeypatch, 1e6, members=2) == (0.5, 2, 40)
    assert plan(monkeypatch, 100, members=2, epochs=30) == (0.5, 2, 30)  # time still bounds it in the loop


# ---- Meta look-ahead ----
@pytest.mark.parametrize("inner_weight", [0.0, 1.0])
def test_meta_grad_is_first_order_lookahead(inner_weight):
    model = tiny_model()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    b1, b2 = tiny_batch(1), tiny_batch(2)

    def grad_fn(batch):
        return sub_gradients.plain_grad(model, params, batch, F.cross_entropy)

    sub_gradients.meta_grad(model, params, b1, b2, grad_fn, inner_lr=0.3, inner_weight=inner_weight)
    got = grads(params)
    for p, b in zip(params, before):
        assert torch.allclose(p, b, atol=1e-7)

    ref = copy.deepcopy(model)
    F.cross_entropy(ref(b1[0]), b1[1]).backward()
    g1 = [p.grad.clone() for p in ref.parameters()]
    with torch.no_grad():
        for p, g in zip(ref.parameters(), g1):
            p.sub_(0.3 * g)
            p.grad = None
    F.cross_entropy(ref(b2[0]), b2[1]).backward()
    for p, g, g_1 in zip(ref.parameters(), got, g1):
        assert torch.allclose(g, p.grad + inner_weight * g_1, atol=1e-6)


# ---- EMA ----
def test_ema_tracks_weights_with_warmup():
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = sub_train.EMA(model, decay=0.9)
    expected = torch.zeros(2, 3)
    for t in range(1, 30):
        with torch.no_grad():
            model.weight.fill_(float(t))
        ema.update(model)
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * float(t)
    assert torch.allclose(ema.model.weight, expected, atol=1e-5)
    assert not ema.model.weight.requires_grad


# ---- Augmentation ----
def test_augment_flip_and_crop():
    x = torch.randn(8, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    flipped = sub_train.augment(x, 0, True, gen)
    for a, b in zip(flipped, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(2))
    cropped = sub_train.augment(x, 4, False, gen)
    assert cropped.shape == x.shape
    # a crop is a shifted window of the reflect-padded image
    xp = F.pad(x, (4,) * 4, mode="reflect")
    for a, p in zip(cropped, xp):
        assert any(torch.equal(a, p[:, i : i + 32, j : j + 32]) for i in range(9) for j in range(9))


def test_cutout_zeroes_one_square_per_image():
    x = torch.randn(64, 3, 32, 32).abs() + 1  # no zero before cutout
    out = sub_train.augment(x, 0, False, torch.Generator().manual_seed(0), cutout=8)
    for a, b in zip(out, x):
        cut = a == 0
        assert torch.equal(cut[0], cut[1]) and torch.equal(cut[0], cut[2])  # all channels alike
        rows, cols = cut[0].any(1).nonzero().flatten(), cut[0].any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        # exactly a rectangle (the square, clipped at the border) is zero; the rest is untouched
        box = torch.zeros_like(cut[0])
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(cut[0], box) and len(rows) * len(cols) == int(cut[0].sum())
        assert torch.equal(a[:, ~box], b[:, ~box])
    sizes = [int((a[0] == 0).sum()) for a in out]
    assert max(sizes) == 64 and min(sizes) < 64  # whole squares inside, clipped ones at the edges


def test_tta_views_are_mirrors_and_reflect_shifts():
    x = torch.randn(2, 3, 32, 32)

    def views(tta, shift):
        return [sub_predict.view(x, *spec) for spec in sub_predict.view_specs(tta, shift)]

    assert len(views(False, 0)) == 1
    flip_only = views(True, 0)
    assert len(flip_only) == 2 and torch.equal(flip_only[1], x.flip(3))
    vs = views(True, 2)
    assert len(vs) == 10
    right = vs[2]  # moved 2 px: column j shows column j+2 of the original, reflected at the edge
    assert torch.equal(right[..., :30], x[..., 2:]) and torch.equal(right[..., 30:], x[..., [30, 29]])
    assert all(torch.equal(vs[i + 1], vs[i].flip(3)) for i in range(2, 10, 2))


# ---- Checkpoints ----
ARCH = {"width": 0.125, "act": "relu", "celu_alpha": 0.075, "whiten": False, "num_classes": 10}


def test_predict_adds_views_only_while_they_fit(monkeypatch):
    model = sub_common.build_model(ARCH)
    images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)

    def run(t_end):
        return sub_predict.predict(
            model, images, [0.5] * 3, [0.25] * 3, torch.device("cpu"), tta=True, tta_shift=2, batch_size=8, t_end=t_end
        )

    labels, used, planned = run(None)
    assert (used, planned) == (10, 10) and labels.shape == (20,)
    first, used, _ = run(time.time() - 1)  # out of time: the first view only, predictions still made
    assert used == 1 and first.shape == (20,)
    monkeypatch.setitem(sub_predict.STOP, "requested", True)  # SIGTERM came: no more views either
    assert run(time.time() + 60)[1] == 1


def test_predict_starts_a_batch_only_if_it_still_ends_in_time(monkeypatch):
    """A machine loaded mid-view: the next view starts (the last one was quick), its first batch
    takes 1 s, and a second like it would end past t_end, so the view is dropped there. On a fake
    clock that only the model's calls move, so the load of the machine running this is no factor."""
    inner = sub_common.build_model(ARCH)
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    clock = [0.0]
    monkeypatch.setattr(sub_predict, "time", types.SimpleNamespace(time=lambda: clock[0]))
    calls = []

    class Loaded(torch.nn.Module):  # quick for the warm-up and the first view (1 + 2 batches of 8)
        def forward(self, x):
            calls.append(len(calls))
            clock[0] += 1.0 if len(calls) > 3 else 0.01
            return inner(x)

    _, used, _ = sub_predict.predict(
        Loaded(), images, [0.5] * 3, [0.25] * 3, torch.device("cpu"), tta=True, batch_size=8, t_end=1.5
    )
    assert used == 1 and len(calls) == 4, "one batch of the second view ran, and no second batch after it"


def test_predict_leaves_room_for_a_batch_slower_than_the_last(monkeypatch):
    """Every batch takes 1 s on a fake clock. At 3.01 s a second batch like the last would still
    end by t_end = 4.5 s, but one twice as slow would not: it is not started, and the view is
    dropped (a view of 200 images once took 0.5 s longer than the last and ended after SIGTERM)."""
    inner = sub_common.build_model(ARCH)
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    clock = [0.0]
    monkeypatch.setattr(sub_predict, "time", types.SimpleNamespace(time=lambda: clock[0]))
    calls = []

    class Steady(torch.nn.Module):  # the warm-up call is quick, every batch after it takes 1 s
        def forward(self, x):
            calls.append(len(calls))
            clock[0] += 1.0 if len(calls) > 1 else 0.01
            return inner(x)

    _, used, _ = sub_predict.predict(
        Steady(), images, [0.5] * 3, [0.25] * 3, torch.device("cpu"), tta=True, batch_size=8, t_end=4.5
    )
    assert used == 1 and len(calls) == 4, "the second view's first batch ran, and no second one after it"


def save(directory, seq, tag):
    meta = {"arch": ARCH, "mean": [0.5] * 3, "std": [0.25] * 3, "tag": tag}
    sub_common.save_checkpoint(str(directory), seq, sub_common.build_model(ARCH).state_dict(), meta)


def test_checkpoint_interrupted_write_is_never_loaded(tmp_path):
    save(tmp_path, 1, "one")
    save(tmp_path, 2, "two")
    good = (tmp_path / "ckpt-000002.pt").read_bytes()
    # a write killed before os.replace: truncated temp file (never matches the pattern) ...
    (tmp_path / ".ckpt-abc123.tmp").write_bytes(good[: len(good) // 2])
    # ... and a newer final file that is truncated anyway (e.g. a disk that lied about fsync)
    (tmp_path / "ckpt-000003.pt").write_bytes(good[: len(good) // 3])
    _, loaded = sub_common.load_latest(str(tmp_path))
    assert loaded["tag"] == "two"


def test_checkpoint_keeps_two_newest_and_fails_clearly_when_none(tmp_path):
    for seq in range(1, 5):
        save(tmp_path, seq, str(seq))
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000003.pt", "ckpt-000004.pt"]
    assert sub_common.load_latest(str(tmp_path))[1]["tag"] == "4"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no loadable checkpoint"):
        sub_common.load_latest(str(empty))


# ---- Config ----
def test_presets_inherit_and_select(monkeypatch):
    cfg = sub_train.make_config(["--preset", "all"])
    assert cfg["sam"] and cfg["gc"] and cfg["meta"] and cfg["whiten"] and cfg["act"] == "celu"
    base = sub_train.make_config(["--preset", "baseline"])
    assert not (base["sam"] or base["gc"] or base["meta"] or base["whiten"])
    monkeypatch.setenv("HAET_PRESET", "sam")
    assert sub_train.make_config([])["sam"] is True
    assert sub_train.make_config(["--set", "sam_rho=0.1"])["sam_rho"] == 0.1
    with pytest.raises(SystemExit):
        sub_train.make_config(["--preset", "no-such-preset"])
    for name in ["baseline", "sam", "ip", "sam-ip", "gc", "meta", "all", "default"]:
        sub_train.make_config(["--preset", name])


def test_set_reads_exponent_numbers_and_refuses_text_for_numbers():
    # YAML 1.1 reads `2e-3` as text; SGD would only fail on it minutes into training
    assert sub_train.make_config(["--set", "weight_decay=2e-3"])["weight_decay"] == 0.002
    assert sub_train.make_config(["--set", "cutout=12"])["cutout"] == 12
    assert sub_train.make_config(["--set", "width=auto"])["width"] == "auto"  # a str default stays free
    with pytest.raises(SystemExit, match="lr must be a number"):
        sub_train.make_config(["--set", "lr=fast"])


# ---- Schedule, checkpointer, width probe, contract ----
def test_lr_at_warms_up_linearly_then_decays_to_zero():
    cfg = {"lr": 0.4, "warmup_frac": 0.2}
    assert sub_train.lr_at(0.0, cfg) == 0.0
    assert sub_train.lr_at(0.1, cfg) == pytest.approx(0.2)
    assert sub_train.lr_at(0.2, cfg) == pytest.approx(0.4)  # the peak, at the end of the warm-up
    assert sub_train.lr_at(0.6, cfg) == pytest.approx(0.2)
    assert sub_train.lr_at(1.0, cfg) == 0.0 and sub_train.lr_at(1.5, cfg) == 0.0  # never negative
    lrs = [sub_train.lr_at(f / 100, cfg) for f in range(101)]
    assert max(lrs) == lrs[20] and lrs[:21] == sorted(lrs[:21]) and lrs[20:] == sorted(lrs[20:], reverse=True)


def test_checkpointer_numbers_saves_keeps_two_and_reports_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HAET_EVENTS", str(tmp_path / "events.jsonl"))
    (tmp_path / "ckpt").mkdir()
    net = sub_common.build_model(ARCH)
    ckpt = sub_train.Checkpointer(str(tmp_path / "ckpt"), {"mean": [0.5] * 3, "std": [0.25] * 3}, t_start=0.0)
    assert not ckpt.due(), "no periodic saves before start_clock"
    ckpt.start_clock(every_s=3600)
    assert not ckpt.due()
    for step in (5, 10, 15):
        ckpt.save(net, ARCH, epoch=step // 5, step=step)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["ckpt-000002.pt", "ckpt-000003.pt"]
    model, meta = sub_common.load_latest(str(tmp_path / "ckpt"))
    assert (meta["epoch"], meta["step"], meta["arch"]) == (3, 15, ARCH) and meta["elapsed_s"] > 0
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["seq"], e["step"]) for e in lines] == [
        ("checkpoint", 1, 5),
        ("checkpoint", 2, 10),
        ("checkpoint", 3, 15),
    ]
    ckpt.start_clock(every_s=0)
    assert ckpt.due()


def test_the_stand_in_is_a_loadable_model_saved_without_drawing_from_the_seed(tmp_path, monkeypatch):
    """The untrained model saved before the budget probe: predict.py loads it, and the trained
    network's initialisation (the next draws of torch's generator) is what it was without it."""
    monkeypatch.setenv("HAET_EVENTS", str(tmp_path / "events.jsonl"))
    (tmp_path / "ckpt").mkdir()
    cfg = sub_train.make_config(["--preset", "ip"])
    ckpt = sub_train.Checkpointer(str(tmp_path / "ckpt"), {"mean": [0.5] * 3, "std": [0.25] * 3}, t_start=0.0)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    sub_train.save_stand_in(ckpt, cfg, num_classes=10)
    assert torch.equal(torch.rand(4), expected)
    model, meta = sub_common.load_latest(str(tmp_path / "ckpt"))
    assert os.listdir(tmp_path / "ckpt") == ["ckpt-000001.pt"] and (meta["epoch"], meta["step"]) == (0, 0)
    assert meta["arch"] == sub_budget.model_arch(cfg, cfg["auto_widths"][0], 10)
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 1, 10)


def test_width_probe_builds_the_training_network(monkeypatch):
    built = []
    real_build = sub_common.build_model
    monkeypatch.setattr(sub_common, "build_model", lambda arch: built.append(arch) or real_build(arch))
    cfg = sub_train.make_config(["--preset", "ip", "--set", "auto_widths=[0.125, 0.25]"])
    width, image_s = sub_budget.plan_width(cfg, torch.device("cpu"), torch.contiguous_format, 10, train_s=1e9, n=5000)
    assert width == 0.25 and image_s > 0  # an unlimited time fits the widest candidate
    assert built == [sub_budget.model_arch(cfg, 0.125, 10)]  # only the narrowest is timed, built as in training
    assert built[0]["whiten"] and built[0]["act"] == "celu"


def test_grace_comes_from_the_contract_variable(monkeypatch):
    for name in ("HAET_PRESET", "HAET_GRACE_S"):
        monkeypatch.delenv(name, raising=False)
    for name, value in [
        ("HAET_DATA", "/nonexistent"),
        ("HAET_CHECKPOINTS", "/nonexistent"),
        ("HAET_BUDGET_S", "8"),
        ("HAET_DEADLINE", "0"),
        ("HAET_SEED", "0"),
        ("HAET_DEVICE", "cpu"),
    ]:
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match="HAET_GRACE_S is not set"):  # no fallback of our own
        sub_train.main([])
    assert "grace_s" not in sub_train.HP


def test_compile_is_tried_only_where_it_is_asked_for_and_can_work(monkeypatch, tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no card
    auto, forced = sub_train.make_config([]), sub_train.make_config(["--set", "compile=true"])
    assert sub_budget.compile_wanted(auto, cpu, 600) == (False, "compile: auto compiles on CUDA only")
    assert sub_budget.compile_wanted(auto, cuda, 100) == (
        False,
        "compile: auto needs a budget of compile_min_budget_s=300 s",
    )
    assert sub_budget.compile_wanted(sub_train.make_config(["--set", "compile=false"]), cuda, 600) == (
        False,
        "compile: false",
    )
    monkeypatch.setenv("PATH", str(tmp_path))  # no C compiler: known before trying, no time reserved
    monkeypatch.delenv("CC", raising=False)
    want, why = sub_budget.compile_wanted(auto, cuda, 600)
    assert not want and why.startswith("no C compiler on PATH" if hasattr(torch, "compile") else "torch ")
    monkeypatch.delattr(torch, "compile", raising=False)  # torch 1.13
    assert sub_budget.compile_wanted(forced, cpu, 600) == (False, f"torch {torch.__version__} has no torch.compile")
