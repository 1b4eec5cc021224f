"""ResNet-9 for HAET 2021 (5000 CIFAR-10 images, hard time budget): the whole recipe, one file.

Recipe of Awad et al., "Improving ResNet-9 Generalization Trained on Small Datasets" (HAET 2021
1st prize): Page's DAWNBench ResNet-9 + improved preprocessing (IP: label smoothing, weight
decay, CELU, frozen 3x3 patch whitening) + SAM + gradient centralization + meta-learning-style
look-ahead steps. Every part is a switch in HP below; presets live in configs/*.yaml.

    python train.py [--preset NAME] [--set key=value ...]     (or HAET_PRESET=NAME)

Everything is driven by the wall clock: the LR schedule runs on the fraction of the time budget
spent, so the schedule finishes (and the final EMA checkpoint is written) before the harness
sends SIGTERM, on any hardware. Read top to bottom: hyperparameters, data, network, gradients,
schedule, checkpoints, and main(), the training loop.
"""
import signal

# ---- Stop flag, installed before the slow imports: SIGTERM must never kill us mid-save ----
STOP = {"requested": False}
signal.signal(signal.SIGTERM, lambda signum, frame: STOP.update(requested=True))

import argparse  # noqa: E402
import copy  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

import common  # noqa: E402  (sets the /tmp cache dirs before torch is imported)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import speed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------------------
# ---- Hyperparameters (defaults; a preset in configs/ overrides any of them) ----
# ---------------------------------------------------------------------------------------------
HP = {
    # model
    "width": "auto",          # channel multiplier of ResNet-9 (1.0 = 64..512); auto: from throughput
    "auto_widths": [0.25, 0.5, 0.75, 1.0],  # candidates for width: auto (multiples of 16 channels)
    "auto_min_epochs": 20,    # auto: the widest candidate that still fits this many epochs (600 s on
                              # 2 CPU cores: 0.5, or 0.25 on a slow day; both scored ~80 %)
    # the budget plan: epochs per network up to epoch_cap, then more networks (plan_budget)
    "epoch_cap": 40,          # more epochs stop paying past this: width 0.25 on CPU scored 80.1 % at
                              # both 40 and 80 epochs (3 seeds, docs/results.md)
    "epochs": "auto",         # epochs per network; auto: epoch_cap where it fits, else what time allows
    "members": "auto",        # networks trained in lockstep and averaged; auto: the plan decides
    "max_members": 8,         # bounds the ensemble's memory on a GPU and its prediction time
    "predict_share": 1 / 3,   # the plan keeps the predicted prediction time under this share of the
                              # predict budget (the rest: start-up, loading, SIGTERM's grace)
    "act": "relu",            # relu | celu
    "celu_alpha": 0.075,
    "whiten": False,          # frozen first layer whitening 3x3 patches (IP)
    "whiten_eps": 1e-2,       # added to the eigenvalues: damps the noisiest directions
    # optimisation
    "batch_size": "auto",     # auto: 512 on CUDA, 128 on CPU (few epochs fit: more, smaller steps win)
    "lr": 0.4, "momentum": 0.9, "nesterov": True,
    "weight_decay": 0.0,      # IP: 5e-4; the default preset's 2e-3 gained 2 points at 600 s on CPU
    "label_smoothing": 0.0,   # IP: 0.2
    "warmup_frac": 0.2,       # linear warm-up over this fraction of the time budget, then linear to 0
    # the paper's techniques (90 s on 2 CPU cores, 3 seeds, docs/results.md: SAM's two passes per
    # step halve the epochs and cost 6-7 points; GC and meta are within noise of the baseline)
    "sam": False, "sam_rho": 0.05,
    "gc": False,
    "meta": False, "meta_inner_lr_mult": 1.0, "meta_inner_weight": 1.0,
    # always-on tricks
    "flip": True, "crop_pad": 4,
    "cutout": 0,              # side of the square zeroed in each training image (0: off; 8 did not
                              # help at 600 s on CPU)
    "ema": True, "ema_decay": 0.98,  # per step, with a 1/(t+10) warm-up so early steps count fully
    "tta": True,              # predict.py averages the logits of the image and its mirror
    "tta_shift": 0,           # ... and of both moved this many pixels up/down/left/right (0: off)
    # system
    "amp": "auto",            # auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU
    "channels_last": True,    # faster on CUDA tensor cores and on CPU (oneDNN) alike
    "compile": "auto",        # auto: torch.compile only on CUDA with a budget >= compile_min_budget_s;
                              # tried once in setup, eager training if it fails (speed.try_compile)
    "compile_min_budget_s": 300,
    "compile_reserve_s": 60,  # the plan leaves this much for compiling; with less than twice it left
                              # the entry trains eagerly; the attempt stops at max(this, half the
                              # time left), a bound (no break-even is measured): a cold compile of
                              # width 0.25 took 128 s on 2 busy CPU cores
    "sync_every": 20,         # CUDA: wait for the GPU every this many steps to time them (speed.StepTimer)
    "safety_s": 2.0,          # finish this long before SIGTERM (final EMA save, slow steps)
    "ckpt_every_s": 10,       # checkpoint every this many seconds of training (at least 12 times in a
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
        dy, dx = (torch.randint(0, 2 * pad + 1, (2, n), generator=gen).to(x.device))
        ar = torch.arange(32, device=x.device)
        rows = (dy[:, None] + ar)[:, None, :, None]  # [n,1,32,1]
        cols = (dx[:, None] + ar)[:, None, None, :]  # [n,1,1,32]
        x = xp[torch.arange(n, device=x.device)[:, None, None, None],
               torch.arange(3, device=x.device)[None, :, None, None], rows, cols]
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
# ---- Network: ResNet-9 (common.py), its width picked from measured throughput ----
# ---------------------------------------------------------------------------------------------
def model_arch(cfg, width, num_classes, members=1):
    """The network's description: common.build_model(arch) builds it, and every checkpoint stores
    it, so the width probe, training and predict.py all build exactly the same network."""
    return {"width": width, "act": cfg["act"], "celu_alpha": cfg["celu_alpha"],
            "whiten": bool(cfg["whiten"]), "num_classes": num_classes, "members": members}


def measure_image_s(arch, device, mf, passes=1, probe_bs=64, timed_steps=3, amp_dtype=None):
    """Seconds per training image of this network: one warm-up step, then the fastest of a few
    timed steps on random data (the fastest: a one-off stall must not shrink the network).
    A small probe batch keeps this cheap (well under a second on CPU); per-image cost only falls
    at the real (larger) batch size, so the estimate errs on the slow side. `passes`: forward/
    backward passes per training step (SAM: 2). `amp_dtype`: the training's autocast precision,
    so a GPU is timed at the speed it will train at (bf16 tensor cores outrun fp32/TF32)."""
    m = common.build_model(arch).to(device, memory_format=mf)
    m = Autocast(m, amp_dtype) if amp_dtype else m
    x = torch.randn(probe_bs, 3, 32, 32, device=device).contiguous(memory_format=mf)
    y = torch.randint(0, arch["num_classes"], (probe_bs,), device=device)
    times = []
    for i in range(1 + timed_steps):
        t0 = time.time()
        scaled_cross_entropy(m(x), y, 0.0, 1.0).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.time() - t0)
    return min(times[1:]) / probe_bs * passes


def plan_width(cfg, device, mf, num_classes, train_s, n):
    """(width, seconds per training image at that width on CPU, else None).

    width: auto -> the widest candidate that still fits auto_min_epochs in the time left.
    Only the narrowest is timed; wider ones are extrapolated with cost ~ width^2 (FLOPs), which
    is pessimistic on CPU where wider convolutions run more efficiently. On 2 CPU cores this picks
    0.25 at 90 s and 0.5 at 600 s; on a VM 1.5x slower per step the 600 s choice sits at the
    boundary, where both widths score the same (docs/results.md)."""
    if cfg["width"] != "auto":
        return float(cfg["width"]), None
    if device.type == "cuda":
        return 1.0, None
    w0 = cfg["auto_widths"][0]
    image_s = measure_image_s(model_arch(cfg, w0, num_classes), device, mf, passes=2 if cfg["sam"] else 1)
    fits = [w for w in cfg["auto_widths"] if image_s * (w / w0) ** 2 * n * cfg["auto_min_epochs"] <= train_s]
    width = max(fits, default=w0)
    return width, image_s * (width / w0) ** 2


def predict_budget_s(budget_s):
    """The predict phase's budget: HAET_PREDICT_BUDGET_S, which the harness tells the train phase;
    without it (an older harness, a run by hand) the harness's default rule, max(20 s, a tenth of
    the training budget), as docs/submission-contract.md states it."""
    told = os.environ.get("HAET_PREDICT_BUDGET_S")
    return float(told) if told else max(20.0, 0.1 * budget_s)


def plan_budget(cfg, device, mf, num_classes, train_s, n, bs, predict_s):
    """How to spend the budget: (width, members, epochs per member; None: as many as time allows).

    Epochs first, up to epoch_cap: past it more epochs of one network stop paying. Time beyond
    the cap buys more networks, trained in lockstep as one batched model and averaged at predict
    time, up to max_members and a predicted prediction time of predict_share of the predict
    budget `predict_s` (each member is one more network to infer, 10 views each). Members cost time
    in proportion on a CPU, which has no idle units; on a GPU a small batch leaves units idle, so
    there the cost of 1 and of max_members members is measured at the real batch size and
    interpolated. The cap is a cap: a plan that fits its epochs in less time ends early."""
    width, cpu_image_s = plan_width(cfg, device, mf, num_classes, train_s, n)
    passes = 2 if cfg["sam"] else 1
    cap = int(cfg["epoch_cap"])
    top = int(cfg["max_members"]) if cfg["members"] == "auto" else int(cfg["members"])
    amp_dtype, _ = mixed_precision(device, cfg["amp"])

    def measured(members):  # training seconds per image of the whole ensemble
        if device.type == "cuda":
            return measure_image_s(model_arch(cfg, width, num_classes, members), device, mf, passes, probe_bs=bs,
                                   amp_dtype=amp_dtype)
        # the width probe's figure where there is one: a second probe would cost a short budget
        return (cpu_image_s or measure_image_s(model_arch(cfg, width, num_classes), device, mf, passes)) * members

    one = measured(1)
    while top > 1 and device.type == "cuda":
        try:
            most = measured(top)
            break
        except torch.cuda.OutOfMemoryError:  # the ensemble must fit the card: halve it until it does
            torch.cuda.empty_cache()
            top //= 2
            print(f"plan: {top * 2} members do not fit the GPU's memory; trying {top}", flush=True)
    else:
        most = one * top
    cost = lambda k: one + (most - one) * (k - 1) / max(top - 1, 1)  # noqa: E731
    epochs_fit = lambda k: train_s / (cost(k) * n)  # noqa: E731
    if cfg["members"] != "auto":
        members = top
    elif epochs_fit(1) <= cap:
        members = 1
    else:  # predicting 10 views of ~1000 images costs about a third of training on 10,000 images
        members = max([k for k in range(1, top + 1) if epochs_fit(k) >= cap
                       and cost(k) * 10_000 / 3 <= cfg["predict_share"] * predict_s], default=1)
    if cfg["epochs"] != "auto":
        return width, members, int(cfg["epochs"])
    return width, members, cap if epochs_fit(members) > cap else None


def compile_wanted(cfg, device, budget_s):
    """(whether to try torch.compile, why or why not), from `compile`: true, false or auto, and from
    what is known without trying (torch 1.13, no C compiler), so no time is reserved in vain."""
    if cfg["compile"] is not True:
        if cfg["compile"] != "auto":
            return False, "compile: false"
        if device.type != "cuda":
            return False, "compile: auto compiles on CUDA only"
        if budget_s < cfg["compile_min_budget_s"]:
            return False, f"compile: auto needs a budget of compile_min_budget_s={cfg['compile_min_budget_s']:g} s"
    why_not = speed.unavailable(device)
    return (False, why_not) if why_not else (True, f"compile: {str(cfg['compile']).lower()}")


def compile_model(cfg, model, wrap, xb, yb, sync, t_end, want, why, n, epochs):
    """(the network to train, seconds spent compiling, why that mode, epochs): when `want`
    (compile_wanted: else `why` not), try_compile once, on
    one batch (xb, yb) of the training size, then time the compiled step so the epochs planned come
    from the speed it will train at (the members stay the eager plan's: see docs/gpu.md). The
    weights and BN statistics are restored, so the trials train nothing."""
    if not want:
        return model, 0.0, why, epochs
    left = t_end - time.time()
    if left < 2 * cfg["compile_reserve_s"]:
        return model, 0.0, f"{left:.0f} s left is under twice compile_reserve_s={cfg['compile_reserve_s']:g}", epochs
    state = copy.deepcopy(model.state_dict())

    def step(net):
        scaled_cross_entropy(wrap(net)(xb), yb, 0.0, 1.0).backward()

    net, seconds, failure = speed.try_compile(model, step, max(cfg["compile_reserve_s"], left / 2), xb.device)
    why = why if net is not model else failure
    if net is not model and cfg["epochs"] == "auto":
        image_s = speed.timed(lambda: step(net), sync, 3) / len(yb) * (2 if cfg["sam"] else 1)
        fit = (t_end - time.time()) / (image_s * n)
        epochs = int(cfg["epoch_cap"]) if fit > cfg["epoch_cap"] else None
    model.load_state_dict(state)
    for p in model.parameters():
        p.grad = None
    return net, seconds, why, epochs


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
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg["weight_decay"]},
                            {"params": other, "weight_decay": 0.0}],
                           lr=0.0, momentum=cfg["momentum"], nesterov=cfg["nesterov"])


def mixed_precision(device, setting):
    """(autocast dtype or None, static loss scale). On CUDA (amp: auto or true) bf16, which needs
    no loss scaling, or fp16 where bf16 is unsupported (pre-Ampere), with a static scale: a dynamic
    GradScaler does not compose with the multi-pass SAM/meta gradients. On CPU: fp32, scale 1."""
    if not (device.type == "cuda" and setting in ("auto", True)):
        return None, 1.0
    return (torch.bfloat16, 1.0) if torch.cuda.is_bf16_supported() else (torch.float16, 1024.0)


class Autocast:
    """Calls `net` under CUDA autocast at `dtype`; the loss is computed in fp32, and the weights,
    gradients and optimizer stay fp32."""

    def __init__(self, net, dtype):
        self.net, self.dtype = net, dtype

    def __call__(self, inp):
        with torch.autocast(device_type="cuda", dtype=self.dtype):
            return self.net(inp)


# ---------------------------------------------------------------------------------------------
# ---- Gradients: plain, SAM, meta look-ahead, GC; update_grad combines them for one step ----
# ---------------------------------------------------------------------------------------------
def centralize_gradients(params):
    """Gradient Centralization: remove each conv/linear filter gradient's mean (all axes but the
    output channel). Acts as a projection constraining weights to a hyperplane: smoother loss."""
    for p in params:
        if p.grad is not None and p.grad.dim() > 1:
            p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))


def plain_grad(model, params, batch, loss_fn):
    """Leaves dL/dparams in .grad; returns the loss and the logits."""
    for p in params:
        p.grad = None
    out = model(batch[0])
    loss = loss_fn(out, batch[1])
    loss.backward()
    return loss.detach(), out.detach()


@torch.no_grad()
def add_to_params(params, deltas, sign=1.0):
    for p, d in zip(params, deltas):
        p.add_(d, alpha=sign)


def sam_grad(model, params, batch, loss_fn, rho):
    """Sharpness-Aware Minimization gradient: g at w + rho * g(w)/||g(w)||, weights restored to w.

    The caller's optimizer then steps *from w* with this gradient (the real two-pass SAM update).
    """
    loss, out = plain_grad(model, params, batch, loss_fn)
    with torch.no_grad():
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        norm = torch.norm(torch.stack([g.norm() for g in grads])) + 1e-12
        eps = [g * (rho / norm) for g in grads]
    add_to_params(params, eps, +1)   # ascend to the worst point nearby
    plain_grad(model, params, batch, loss_fn)
    add_to_params(params, eps, -1)   # back to w (BN running stats saw one extra batch: harmless)
    return loss, out


def meta_grad(model, params, b1, b2, grad_fn, inner_lr, inner_weight):
    """First-order look-ahead across two batches ("tasks"), in the spirit of MLTP:
    theta' = theta - inner_lr * g(B1; theta);  gradient = inner_weight * g(B1; theta) + g(B2; theta').
    A step that helps B1 is only rewarded if it also helps B2. Weights restored to theta."""
    loss, out = grad_fn(b1)
    g1 = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    step = [g * -inner_lr for g in g1]
    add_to_params(params, step, +1)
    grad_fn(b2)
    add_to_params(params, step, -1)
    with torch.no_grad():
        for p, g in zip(params, g1):
            p.grad.add_(g, alpha=inner_weight)
    return loss, out


def scaled_cross_entropy(out, target, label_smoothing, scale):
    """The training loss, in fp32 whatever the forward pass ran in, times the static fp16 loss
    scale (1 with bf16 and on CPU). An ensemble's [batch, members, classes] output counts each
    member's mean loss in full (the sum over members), so every member learns at the rate one
    network alone would."""
    if out.dim() == 3:
        members = out.shape[1]
        out, target = out.flatten(0, 1), target.repeat_interleave(members)
        scale = scale * members
    return F.cross_entropy(out.float(), target, label_smoothing=label_smoothing) * scale


def batch_grad(forward, params, batch, cfg, loss_scale):
    """Plain or SAM gradient of one batch, true (unscaled) values in .grad; (scaled loss, logits)."""
    loss_fn = functools.partial(scaled_cross_entropy, label_smoothing=cfg["label_smoothing"], scale=loss_scale)
    if cfg["sam"]:
        loss, out = sam_grad(forward, params, batch, loss_fn, cfg["sam_rho"])
    else:
        loss, out = plain_grad(forward, params, batch, loss_fn)
    if loss_scale != 1.0:
        for p in params:
            p.grad.div_(loss_scale)
    return loss, out


def update_grad(forward, params, batches, lr, cfg, loss_scale):
    """Leaves the direction of one optimizer step in .grad: the gradient of one batch, or with meta
    the look-ahead over a pair (inner rate meta_inner_lr_mult x lr), then GC on the result.
    Returns the (scaled) loss and the logits of the first batch."""
    grad_fn = functools.partial(batch_grad, forward, params, cfg=cfg, loss_scale=loss_scale)
    if cfg["meta"]:
        loss, out = meta_grad(forward, params, batches[0], batches[1], grad_fn,
                              cfg["meta_inner_lr_mult"] * lr, cfg["meta_inner_weight"])
    else:
        loss, out = grad_fn(batches[0])
    if cfg["gc"]:
        centralize_gradients(params)
    return loss, out


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
    """Saves a network as ckpt-000001.pt, ckpt-000002.pt, ... in the checkpoint directory, atomically
    (common.save_checkpoint: temp file, fsync, rename; the two newest kept), with `meta` plus the
    epoch, step and seconds since `t_start`; emits a checkpoint event for each. `due()`: the last
    save (or the creation) is at least `every_s` seconds old."""

    def __init__(self, directory, meta, every_s, t_start):
        self.directory, self.meta, self.every_s, self.t_start = directory, meta, every_s, t_start
        self.saved, self.last = 0, time.time()

    def due(self):
        return time.time() - self.last >= self.every_s

    def save(self, net, epoch, step):
        self.saved += 1
        meta = {**self.meta, "epoch": epoch, "step": step, "elapsed_s": time.time() - self.t_start}
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        common.save_checkpoint(self.directory, self.saved, state, meta)
        emit("checkpoint", seq=self.saved, epoch=epoch, step=step)
        self.last = time.time()


# ---------------------------------------------------------------------------------------------
# ---- Training ----
# ---------------------------------------------------------------------------------------------
def main(argv=None):
    cfg = make_config(argv)
    t_start = time.time()
    data_dir = common.require_env("HAET_DATA")
    ckpt_dir = common.require_env("HAET_CHECKPOINTS")
    budget_s = float(common.require_env("HAET_BUDGET_S"))
    deadline = float(common.require_env("HAET_DEADLINE"))
    grace_s = float(common.require_env("HAET_GRACE_S"))  # SIGTERM comes at deadline - grace
    seed = int(common.require_env("HAET_SEED"))
    device = common.pick_device(common.require_env("HAET_DEVICE"))
    t_end = deadline - grace_s - cfg["safety_s"]  # the schedule must be done (and saved) by then

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # augmentation and batch order
    if device.type == "cpu":
        torch.set_num_threads(common.cpu_cores())
    else:
        torch.backends.cudnn.benchmark = True
    sync = speed.device_sync(device)
    mf = torch.channels_last if cfg["channels_last"] else torch.contiguous_format

    # ---- Data, batch size, network ----
    x, y, mean, std, num_classes = load_train(data_dir, device)
    n = len(y)
    bs = int(cfg["batch_size"]) if cfg["batch_size"] != "auto" else (512 if device.type == "cuda" else 128)
    bs = min(bs, n // (2 if cfg["meta"] else 1))  # meta needs two batches per update
    want_compile, compile_why = compile_wanted(cfg, device, budget_s)
    width, members, epochs = plan_budget(cfg, device, mf, num_classes,  # leaving room to compile
                                         t_end - time.time() - (cfg["compile_reserve_s"] if want_compile else 0),
                                         n, bs, predict_budget_s(budget_s))
    arch = model_arch(cfg, width, num_classes, members)
    model = make_network(arch, cfg, x).to(device, memory_format=mf)
    params = [p for p in model.parameters() if p.requires_grad]  # all but the frozen whitening layer
    opt = make_optimizer(params, cfg)
    ema = EMA(model, cfg["ema_decay"]) if cfg["ema"] else None

    amp_dtype, loss_scale = mixed_precision(device, cfg["amp"])
    amp = amp_dtype is not None
    wrap = (lambda net: Autocast(net, amp_dtype)) if amp else (lambda net: net)  # noqa: E731
    first = torch.arange(bs, device=device)  # one batch, laid out as the loop's batches are (no recompile)
    net, compile_s, compile_why, epochs = compile_model(cfg, model, wrap, x.contiguous(memory_format=mf)[first],
                                                        y[first], sync, t_end,
                                                        want_compile, compile_why, n, epochs)
    use_compile, forward = net is not model, wrap(net)

    t_train = time.time()
    train_s = max(t_end - t_train, 1e-3)
    per_update = 2 if cfg["meta"] else 1  # meta consumes a pair of batches per update
    planned_steps = epochs * (n // bs // per_update) if epochs else None  # None: time decides
    mode = "compiled" if use_compile else "eager"
    emit("config", width=width, members=members, planned_epochs=epochs, batch_size=bs,
         compile=int(use_compile), compile_mode=mode, compile_why=compile_why, compile_s=compile_s,
         amp=int(amp), planned_train_s=train_s, setup_s=t_train - t_start)
    print(f"compile: {mode} ({compile_why}; {compile_s:.1f} s)", flush=True)
    print(f"preset={cfg['preset']} device={device} width={width} members={members} epochs={epochs or 'time'} "
          f"batch={bs} compile={use_compile} amp={amp} train_s={train_s:.1f} setup_s={t_train - t_start:.1f}",
          flush=True)

    # ---- The loop: epochs of updates until SIGTERM or the planned end ----
    saved_net = ema.model if ema else model
    ckpt = Checkpointer(ckpt_dir, {"arch": arch, "mean": mean, "std": std, "tta": bool(cfg["tta"]),
                                   "tta_shift": int(cfg["tta_shift"]), "preset": cfg["preset"]},
                        max(2.0, min(cfg["ckpt_every_s"], train_s / 12)), t_start)
    step, epoch, lr = 0, 0, 0.0
    timer = speed.StepTimer(sync, cfg["sync_every"] if device.type == "cuda" else 1)
    stopping = STOP["requested"]
    while not stopping:
        # one epoch: fresh augmentation and order of the whole set, on its device
        xa = augment(x, cfg["crop_pad"], cfg["flip"], gen, cfg["cutout"]).contiguous(memory_format=mf)
        order = torch.randperm(n, generator=gen).to(device)
        batches = [order[i:i + bs] for i in range(0, n - bs + 1, bs)]  # drop the ragged last batch
        loss_sum, correct, seen = 0.0, 0, 0
        timer.restart()
        for i in range(0, len(batches) - per_update + 1, per_update):
            t0 = time.time()
            # stop on SIGTERM, when the queued steps and the next (at the pessimistic step time) would
            # end late, or when the planned epochs are done
            stopping = STOP["requested"] or timer.done_by() >= t_end or (planned_steps and step >= planned_steps)
            if stopping:
                break
            # the schedule follows the time spent or the planned steps done, whichever is further
            fraction = (t0 - t_train) / train_s
            lr = lr_at(max(fraction, step / planned_steps) if planned_steps else fraction, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            b = [(xa[idx], y[idx]) for idx in batches[i:i + per_update]]
            loss, out = update_grad(forward, params, b, lr, cfg, loss_scale)
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
                ckpt.save(saved_net, epoch, step)
                timer.restart()
        if seen:  # an epoch cut short by the stop still counts, with what it saw
            epoch += 1
            loss_sum, correct = float(loss_sum), int(correct)
            emit("epoch", epoch=epoch, step=step, train_loss=loss_sum / seen, train_acc=correct / seen,
                 lr=lr, elapsed_s=time.time() - t_start)
            print(f"epoch {epoch:3d} step {step:5d} loss {loss_sum / seen:.4f} acc {correct / seen:.4f} "
                  f"lr {lr:.4f} t {time.time() - t_start:6.1f}s", flush=True)
    ckpt.save(saved_net, epoch, step)
    emit("done", epoch=epoch, step=step, stopped_by_signal=int(STOP["requested"]))
    print(f"saved final checkpoint after {epoch} epochs / {step} steps, {time.time() - t_start:.1f}s "
          f"(SIGTERM: {STOP['requested']})", flush=True)


if __name__ == "__main__":
    main()
    # The final checkpoint is saved (fsync'd) and the log flushed. A compiled run on CPU did not exit
    # within 7 s of its final save (torch.compile's worker processes at interpreter teardown) and was
    # ended by SIGTERM (outcome killed_at_deadline): exit without teardown, as predict.py does.
    os._exit(0)
