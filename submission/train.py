"""ResNet-9 for HAET 2021 (5000 CIFAR-10 images, hard time budget): the training recipe.

Recipe of Awad et al., "Improving ResNet-9 Generalization Trained on Small Datasets" (HAET 2021
1st prize): Page's DAWNBench ResNet-9 + improved preprocessing (IP: label smoothing, weight
decay, CELU, frozen 3x3 patch whitening) + SAM + gradient centralization + meta-learning-style
look-ahead steps. Every part is a switch in HP below; presets live in configs/*.yaml.

    python train.py [--preset NAME] [--set key=value ...]     (or HAET_PRESET=NAME)

Everything is driven by the wall clock: the LR schedule runs on the fraction of the time budget
spent, so the schedule finishes (and the final EMA checkpoint is written) before the harness
sends SIGTERM, on any hardware. Read top to bottom: hyperparameters, data, network, schedule,
checkpoints, and main(), the steps of a run, then the training loop. Beside this file:
gradients.py (the loss; plain, SAM and meta gradients; GC), budget.py (the budget plan: width,
members, epochs, compiling), speed.py (compiling, precision, step timing), common.py (the network,
checkpoint files).
"""

import signal

# ---- Stop flag, installed before the slow imports: SIGTERM must never kill us mid-save ----
STOP = {"requested": False}
signal.signal(signal.SIGTERM, lambda signum, frame: STOP.update(requested=True))

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import budget  # noqa: E402
import common  # noqa: E402  (sets the /tmp cache dirs before torch is imported)
import gradients  # noqa: E402
import numpy as np  # noqa: E402
import speed  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------------------
# ---- Hyperparameters (defaults; a preset in configs/ overrides any of them) ----
# ---------------------------------------------------------------------------------------------
HP = {
    # model
    "width": "auto",  # channel multiplier of ResNet-9 (1.0 = 64..512); auto: from throughput
    "auto_widths": [0.25, 0.5, 0.75, 1.0],  # candidates for width: auto (multiples of 16 channels)
    "auto_min_epochs": 20,  # auto: the widest candidate that still fits this many epochs (600 s on
    # 2 CPU cores: 0.5, or 0.25 on a slow day; both scored ~80 %)
    # the budget plan: epochs per network up to epoch_cap, then more networks (budget.plan_budget)
    "epoch_cap": 40,  # more epochs stop paying past this: width 0.25 on CPU scored 80.1 % at
    # both 40 and 80 epochs (3 seeds, docs/results.md)
    "epochs": "auto",  # epochs per network; auto: epoch_cap where it fits, else what time allows
    "members": "auto",  # networks trained in lockstep and averaged; auto: the plan decides
    "max_members": 8,  # bounds the ensemble's memory on a GPU and its prediction time
    "predict_share": 1 / 3,  # the plan keeps the predicted prediction time under this share of the
    # predict budget (the rest: start-up, loading, SIGTERM's grace)
    "act": "relu",  # relu | celu
    "celu_alpha": 0.075,
    "whiten": False,  # frozen first layer whitening 3x3 patches (IP)
    "whiten_eps": 1e-2,  # added to the eigenvalues: damps the noisiest directions
    # optimisation
    "batch_size": "auto",  # auto: 512 on CUDA, 128 on CPU (few epochs fit: more, smaller steps win)
    "lr": 0.4,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 0.0,  # IP: 5e-4; the default preset's 2e-3 gained 2 points at 600 s on CPU
    "label_smoothing": 0.0,  # IP: 0.2
    "warmup_frac": 0.2,  # linear warm-up over this fraction of the time budget, then linear to 0
    # the paper's techniques (90 s on 2 CPU cores, 3 seeds, docs/results.md: SAM's two passes per
    # step halve the epochs and cost 6-7 points; GC and meta are within noise of the baseline)
    "sam": False,
    "sam_rho": 0.05,
    "gc": False,
    "meta": False,
    "meta_inner_lr_mult": 1.0,
    "meta_inner_weight": 1.0,
    # always-on tricks
    "flip": True,
    "crop_pad": 4,
    "cutout": 0,  # side of the square zeroed in each training image (0: off; 8 did not
    # help at 600 s on CPU)
    "ema": True,
    "ema_decay": 0.98,  # per step, with a 1/(t+10) warm-up so early steps count fully
    "tta": True,  # predict.py averages the logits of the image and its mirror
    "tta_shift": 0,  # ... and of both moved this many pixels up/down/left/right (0: off)
    # system
    "amp": "auto",  # auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU
    "channels_last": True,  # faster on CUDA tensor cores and on CPU (oneDNN) alike
    "compile": "auto",  # auto: torch.compile only on CUDA with a budget >= compile_min_budget_s;
    # tried once in setup, eager training if it fails (speed.try_compile)
    "compile_min_budget_s": 300,
    "compile_reserve_s": 60,  # the plan leaves this much for compiling; with less than twice it left
    # the entry trains eagerly; the attempt stops at max(this, half the
    # time left). A cold compile took 41-52 s on 2 CPU cores alone, and
    # did not pay there (docs/results.md): auto compiles on CUDA only
    "sync_every": 20,  # CUDA: wait for the GPU every this many steps to time them (speed.StepTimer)
    "safety_s": 2.0,  # finish this long before SIGTERM (final EMA save, slow steps)
    "ckpt_every_s": 10,  # checkpoint every this many seconds of training (at least 12 times in a
    # short run, for the harness's --curve, but never more than every 2 s)
}


def load_preset(name, seen=()):
    """configs/NAME.yaml; `inherit: OTHER` pulls in another preset first."""
    if name in seen:
        raise SystemExit(f"error: preset inheritance loop at {name!r}")
    path = os.path.join(HERE, "configs", f"{name}.yaml")
    if not os.path.exists(path):
        known = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, "configs")) if f.endswith(".yaml"))
        raise SystemExit(f"error: no preset {name!r}; known presets: {', '.join(known)}")
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    parent = cfg.pop("inherit", None)
    out = load_preset(parent, seen + (name,)) if parent else {}
    out.update(cfg)
    return out


def make_config(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=os.environ.get("HAET_PRESET") or "default")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one HP")
    args = p.parse_args(argv)
    cfg = dict(HP)
    for k, v in list(load_preset(args.preset).items()) + [s.split("=", 1) for s in args.set]:
        if k not in HP:
            raise SystemExit(f"error: unknown hyperparameter {k!r}")
        cfg[k] = parse_value(k, v)
    cfg["preset"] = args.preset
    return cfg


def parse_value(key, value):
    """A YAML value for HP[key]; numbers YAML reads as text (`2e-3`: YAML wants `2.0e-3`) are
    read as numbers where the default is a number, and anything else non-numeric is refused."""
    if isinstance(value, str):
        value = yaml.safe_load(value)
    default = HP[key]
    if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SystemExit(f"error: {key} must be a number (default {default!r}), got {value!r}") from None
    return value


# ---- Events: JSON lines the harness plots over time ----
def emit(event, **fields):
    path = os.environ.get("HAET_EVENTS")
    if path:
        try:
            with open(path, "a") as f:
                f.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        except OSError:
            pass  # progress reports are optional; never let them stop training


# ---------------------------------------------------------------------------------------------
# ---- Data: the whole training set lives on the device, augmented once per epoch ----
# ---------------------------------------------------------------------------------------------
def load_train(data_dir, device):
    with np.load(os.path.join(data_dir, "train.npz")) as d:
        images, labels = d["images"], d["labels"]
        num_classes = len(d["classes"]) if "classes" in d else int(labels.max()) + 1
    mean = (images.reshape(-1, 3).mean(0) / 255).tolist()
    std = (images.reshape(-1, 3).std(0) / 255).tolist()
    x = common.normalize(images, mean, std).to(device)
    y = torch.as_tensor(labels, dtype=torch.long).to(device)
    return x, y, mean, std, num_classes


def augment(x, pad, flip, gen, cutout=0):
    """Random crop (reflect pad + shift), horizontal flip and cutout (a zeroed cutout x cutout
    square, i.e. the mean colour after normalisation) of the whole set, on its device."""
    n = x.shape[0]
    if flip:
        mask = torch.rand(n, generator=gen).to(x.device) < 0.5
        x = torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)
    if pad:
        xp = F.pad(x, (pad,) * 4, mode="reflect")
        dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=gen).to(x.device)
        ar = torch.arange(32, device=x.device)
        rows = (dy[:, None] + ar)[:, None, :, None]  # [n,1,32,1]
        cols = (dx[:, None] + ar)[:, None, None, :]  # [n,1,1,32]
        x = xp[
            torch.arange(n, device=x.device)[:, None, None, None],
            torch.arange(3, device=x.device)[None, :, None, None],
            rows,
            cols,
        ]
    if cutout:
        # the centre is uniform over the image (DeVries & Taylor), so squares at the edge are clipped
        corner = torch.randint(-(cutout // 2), 32 - cutout // 2, (2, n), generator=gen).to(x.device)
        ar = torch.arange(32, device=x.device)
        inside = (ar >= corner[..., None]) & (ar < corner[..., None] + cutout)  # [2,n,32]
        x = x * ~(inside[0][:, None, :, None] & inside[1][:, None, None, :])
    return x


def whitening_filters(x, eps, max_images=512):
    """Conv weights/bias that whiten 3x3 patches: W = diag(1/sqrt(eig+eps)) V^T, b = -W mean.

    Eigendecomposition of the covariance of all 3x3x3 patches of (a sample of) the training
    images; the 27 filters map each patch onto its decorrelated, unit-variance principal axes.
    """
    patches = F.unfold(x[:max_images].double(), 3).transpose(1, 2).reshape(-1, 27)
    mean = patches.mean(0)
    cov = torch.cov(patches.T) if hasattr(torch, "cov") else (patches - mean).T @ (patches - mean) / (len(patches) - 1)
    eigvals, eigvecs = torch.linalg.eigh(cov)
    w = eigvecs.T / torch.sqrt(eigvals.clamp(min=0) + eps)[:, None]
    return w.reshape(27, 3, 3, 3).float(), (-w @ mean).float()


# ---------------------------------------------------------------------------------------------
# ---- Network: ResNet-9 (common.py) at the width the budget plan picks (budget.py) ----
# ---------------------------------------------------------------------------------------------
def make_network(arch, cfg, x):
    """common.build_model(arch); with whiten (IP), its frozen first layer whitens the 3x3 patches of
    the training images x (Page's final DAWNBench network)."""
    model = common.build_model(arch)
    if cfg["whiten"]:
        w, b = whitening_filters(x.cpu(), cfg["whiten_eps"])
        model.whiten.weight.data.copy_(w)
        model.whiten.bias.data.copy_(b)
    return model


def make_optimizer(params, cfg):
    """SGD with Nesterov momentum; weight decay on conv/linear weights only, not on BN's affine
    parameters. The learning rate is set before every step from lr_at()."""
    decay = [p for p in params if p.dim() > 1]
    other = [p for p in params if p.dim() <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": other, "weight_decay": 0.0}],
        lr=0.0,
        momentum=cfg["momentum"],
        nesterov=cfg["nesterov"],
    )


# ---- EMA of the weights (and BN statistics): what we checkpoint and score ----
class EMA:
    def __init__(self, model, decay):
        self.model, self.decay, self.updates = copy.deepcopy(model).eval(), decay, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)
            else:
                e.copy_(m)


# ---------------------------------------------------------------------------------------------
# ---- Schedule and checkpoints ----
# ---------------------------------------------------------------------------------------------
def lr_at(fraction, cfg):
    """The learning rate once `fraction` of the training time is spent: linear warm-up from 0 to
    cfg["lr"] over the first warmup_frac, then linear decay to 0 at fraction 1. Time, not steps:
    the schedule is complete at the planned end on any hardware."""
    peak, warmup = cfg["lr"], cfg["warmup_frac"]
    if fraction < warmup:
        return peak * (fraction / warmup)
    return peak * max(0.0, (1 - fraction) / (1 - warmup))


class Checkpointer:
    """Saves networks as ckpt-000001.pt, ckpt-000002.pt, ... in the checkpoint directory, atomically
    (common.save_checkpoint: temp file, fsync, rename; the two newest kept), each with its arch,
    `meta` and the epoch, step and seconds since `t_start`; emits a checkpoint event for each.
    `due()`: periodic saves have begun (start_clock) and the last is at least `every_s` seconds old."""

    def __init__(self, directory, meta, t_start):
        self.directory, self.meta, self.t_start = directory, meta, t_start
        self.saved, self.every_s, self.last = 0, float("inf"), time.time()

    def start_clock(self, every_s):
        """Periodic saves from now on, every `every_s` seconds."""
        self.every_s, self.last = every_s, time.time()

    def due(self):
        return time.time() - self.last >= self.every_s

    def save(self, net, arch, epoch, step):
        self.saved += 1
        meta = {**self.meta, "arch": arch, "epoch": epoch, "step": step, "elapsed_s": time.time() - self.t_start}
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        common.save_checkpoint(self.directory, self.saved, state, meta)
        emit("checkpoint", seq=self.saved, epoch=epoch, step=step)
        self.last = time.time()


def save_stand_in(ckpt, cfg, num_classes):
    """Checkpoint 1: an untrained network of the narrowest candidate width, saved before anything
    slow (the budget probe, compiling, the first epoch), so that a start too slow for training to
    begin (a loaded machine, a short budget) still leaves a model to score. It scores at chance;
    the trained network's saves replace it."""
    arch = budget.model_arch(cfg, cfg["auto_widths"][0], num_classes)
    with torch.random.fork_rng(devices=[]):  # the trained network's initialisation stays what it was without it
        ckpt.save(common.build_model(arch), arch, epoch=0, step=0)


# ---------------------------------------------------------------------------------------------
# ---- Training: main() is the steps of a run; train_loop() the epochs ----
# ---------------------------------------------------------------------------------------------
def main(argv=None):
    """A run: its settings, the data, a first model at once, the plan, the epochs, the final save."""
    cfg = make_config(argv)
    run = read_run(cfg)
    gen = set_up_device(run)
    x, y, mean, std, num_classes = load_train(run.data_dir, run.device)
    ckpt = Checkpointer(
        run.ckpt_dir,
        {
            "mean": mean,
            "std": std,
            "tta": bool(cfg["tta"]),
            "tta_shift": int(cfg["tta_shift"]),
            "preset": cfg["preset"],
        },
        run.t_start,
    )
    save_stand_in(ckpt, cfg, num_classes)  # before anything slow: a start cut short still leaves a model
    training = set_up_training(cfg, run, x, y, num_classes)
    report_config(cfg, run, training)
    epoch, step = train_loop(cfg, run, training, x, y, gen, ckpt)
    ckpt.save(training.saved_net, training.arch, epoch, step)  # the last save: the model scored
    emit("done", epoch=epoch, step=step, stopped_by_signal=int(STOP["requested"]))
    print(
        f"saved final checkpoint after {epoch} epochs / {step} steps, {time.time() - run.t_start:.1f}s "
        f"(SIGTERM: {STOP['requested']})",
        flush=True,
    )


def read_run(cfg):
    """The run as the harness sets it out in HAET_* variables (docs/submission-contract.md), all read
    before anything slow so that a missing one is named at once; t_end: when the schedule must be
    done and saved, safety_s before the SIGTERM at HAET_DEADLINE - HAET_GRACE_S."""
    t_start = time.time()
    data_dir = common.require_env("HAET_DATA")
    ckpt_dir = common.require_env("HAET_CHECKPOINTS")
    budget_s = float(common.require_env("HAET_BUDGET_S"))
    deadline = float(common.require_env("HAET_DEADLINE"))
    grace_s = float(common.require_env("HAET_GRACE_S"))
    seed = int(common.require_env("HAET_SEED"))
    device = common.pick_device(common.require_env("HAET_DEVICE"))
    return SimpleNamespace(
        t_start=t_start,
        data_dir=data_dir,
        ckpt_dir=ckpt_dir,
        budget_s=budget_s,
        seed=seed,
        device=device,
        t_end=deadline - grace_s - cfg["safety_s"],
        sync=speed.device_sync(device),
        mf=torch.channels_last if cfg["channels_last"] else torch.contiguous_format,
    )


def set_up_device(run):
    """Seeds torch and sets the device up; returns the generator of augmentation and batch order."""
    torch.manual_seed(run.seed)
    if run.device.type == "cpu":
        torch.set_num_threads(common.cpu_cores())
    else:
        torch.backends.cudnn.benchmark = True
    return torch.Generator().manual_seed(run.seed)


def set_up_training(cfg, run, x, y, num_classes):
    """Set-up after the data: the batch size, the budget plan (budget.py: width, members, epochs),
    the network with its optimizer and EMA, the precision, and compiling, tried once. Returns what
    the loop needs; the training window is t_train .. run.t_end."""
    device, mf, n = run.device, run.mf, len(y)
    bs = int(cfg["batch_size"]) if cfg["batch_size"] != "auto" else (512 if device.type == "cuda" else 128)
    bs = min(bs, n // (2 if cfg["meta"] else 1))  # meta needs two batches per update
    want_compile, compile_why = budget.compile_wanted(cfg, device, run.budget_s)
    plan_s = run.t_end - time.time() - (cfg["compile_reserve_s"] if want_compile else 0)  # room to compile
    width, members, epochs = budget.plan_budget(
        cfg, device, mf, num_classes, plan_s, n, bs, budget.predict_budget_s(run.budget_s)
    )
    arch = budget.model_arch(cfg, width, num_classes, members)
    model = make_network(arch, cfg, x).to(device, memory_format=mf)
    params = [p for p in model.parameters() if p.requires_grad]  # all but the frozen whitening layer
    opt = make_optimizer(params, cfg)
    ema = EMA(model, cfg["ema_decay"]) if cfg["ema"] else None

    amp_dtype, loss_scale = speed.mixed_precision(device, cfg["amp"])
    wrap = (lambda net: speed.Autocast(net, amp_dtype)) if amp_dtype else (lambda net: net)  # noqa: E731
    first = torch.arange(bs, device=device)  # one batch, laid out as the loop's batches are (no recompile)
    net, compile_s, compile_why, epochs = budget.compile_model(
        cfg,
        model,
        wrap,
        x.contiguous(memory_format=mf)[first],
        y[first],
        run.sync,
        run.t_end,
        want_compile,
        compile_why,
        n,
        epochs,
    )
    per_update = 2 if cfg["meta"] else 1  # meta consumes a pair of batches per update
    t_train = time.time()
    return SimpleNamespace(
        bs=bs,
        width=width,
        members=members,
        epochs=epochs,
        arch=arch,
        model=model,
        params=params,
        opt=opt,
        ema=ema,
        saved_net=ema.model if ema else model,  # the EMA is what is saved and scored
        forward=wrap(net),
        amp=amp_dtype is not None,
        loss_scale=loss_scale,
        compiled=net is not model,
        compile_s=compile_s,
        compile_why=compile_why,
        per_update=per_update,
        planned_steps=epochs * (n // bs // per_update) if epochs else None,  # None: time decides
        t_train=t_train,
        train_s=max(run.t_end - t_train, 1e-3),
    )


def report_config(cfg, run, training):
    """The plan as a config event (the harness's report shows it) and as the log's first lines."""
    mode, setup_s = "compiled" if training.compiled else "eager", training.t_train - run.t_start
    emit(
        "config",
        width=training.width,
        members=training.members,
        planned_epochs=training.epochs,
        batch_size=training.bs,
        compile=int(training.compiled),
        compile_mode=mode,
        compile_why=training.compile_why,
        compile_s=training.compile_s,
        amp=int(training.amp),
        planned_train_s=training.train_s,
        setup_s=setup_s,
    )
    print(f"compile: {mode} ({training.compile_why}; {training.compile_s:.1f} s)", flush=True)
    print(
        f"preset={cfg['preset']} device={run.device} width={training.width} members={training.members} "
        f"epochs={training.epochs or 'time'} batch={training.bs} compile={training.compiled} amp={training.amp} "
        f"train_s={training.train_s:.1f} setup_s={setup_s:.1f}",
        flush=True,
    )


def train_loop(cfg, run, training, x, y, gen, ckpt):
    """Epochs of updates until SIGTERM, the planned end or the planned steps; checkpoints the
    scored network every ckpt_every_s. Returns the epochs and steps done."""
    n, bs, per_update, planned_steps = len(y), training.bs, training.per_update, training.planned_steps
    model, params, opt, ema, forward, loss_scale = (
        training.model,
        training.params,
        training.opt,
        training.ema,
        training.forward,
        training.loss_scale,
    )
    ckpt.start_clock(max(2.0, min(cfg["ckpt_every_s"], training.train_s / 12)))
    step, epoch, lr = 0, 0, 0.0
    timer = speed.StepTimer(run.sync, cfg["sync_every"] if run.device.type == "cuda" else 1)
    stopping = STOP["requested"]
    while not stopping:
        # one epoch: fresh augmentation and order of the whole set, on its device
        xa = augment(x, cfg["crop_pad"], cfg["flip"], gen, cfg["cutout"]).contiguous(memory_format=run.mf)
        order = torch.randperm(n, generator=gen).to(run.device)
        batches = [order[i : i + bs] for i in range(0, n - bs + 1, bs)]  # drop the ragged last batch
        loss_sum, correct, seen = 0.0, 0, 0
        timer.restart()
        for i in range(0, len(batches) - per_update + 1, per_update):
            t0 = time.time()
            # stop on SIGTERM, when the queued steps and the next (at the pessimistic step time) would
            # end late, or when the planned epochs are done
            stopping = STOP["requested"] or timer.done_by() >= run.t_end or (planned_steps and step >= planned_steps)
            if stopping:
                break
            # the schedule follows the time spent or the planned steps done, whichever is further
            fraction = (t0 - training.t_train) / training.train_s
            lr = lr_at(max(fraction, step / planned_steps) if planned_steps else fraction, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            b = [(xa[idx], y[idx]) for idx in batches[i : i + per_update]]
            loss, out = gradients.update_grad(forward, params, b, lr, cfg, loss_scale)
            if loss_scale == 1.0 or speed.grads_finite(params):
                opt.step()  # (fp16 only: skip the rare step whose gradient overflowed; one sync)
            if ema:
                ema.update(model)
            step += 1
            loss_sum += loss.float() / loss_scale * len(b[0][1])  # stays on the device: no sync
            correct += (out.mean(1).argmax(1) == b[0][1]).sum()  # the ensemble's prediction
            seen += len(b[0][1])
            timer.stepped()
            if ckpt.due():
                ckpt.save(training.saved_net, training.arch, epoch, step)
                timer.restart()
        if seen:  # an epoch cut short by the stop still counts, with what it saw
            epoch += 1
            loss_sum, correct = float(loss_sum), int(correct)
            emit(
                "epoch",
                epoch=epoch,
                step=step,
                train_loss=loss_sum / seen,
                train_acc=correct / seen,
                lr=lr,
                elapsed_s=time.time() - run.t_start,
            )
            print(
                f"epoch {epoch:3d} step {step:5d} loss {loss_sum / seen:.4f} acc {correct / seen:.4f} "
                f"lr {lr:.4f} t {time.time() - run.t_start:6.1f}s",
                flush=True,
            )
    return epoch, step


if __name__ == "__main__":
    main()
    # The final checkpoint is saved (fsync'd) and the log flushed. A compiled run on CPU did not exit
    # within 7 s of its final save (torch.compile's worker processes at interpreter teardown) and was
    # ended by SIGTERM (outcome killed_at_deadline): exit without teardown, as predict.py does.
    os._exit(0)
