"""The budget plan: how train.py spends its time. The network's width (measured throughput on a
CPU), how many networks to train in lockstep, the epochs per network, and whether to compile.

Everything here is decided in set-up, from a few timed probe steps and the clock, so the same
entry fits a 2-core CPU at 90 s and a GPU at 600 s without a change to its hyperparameters.
"""

import copy
import os
import time

import common  # (sets the /tmp cache dirs before torch is imported)
import gradients
import speed
import torch


def model_arch(cfg, width, num_classes, members=1):
    """The network's description: common.build_model(arch) builds it, and every checkpoint stores
    it, so the width probe, training and predict.py all build exactly the same network."""
    return {
        "width": width,
        "act": cfg["act"],
        "celu_alpha": cfg["celu_alpha"],
        "whiten": bool(cfg["whiten"]),
        "num_classes": num_classes,
        "members": members,
    }


def measure_image_s(arch, device, mf, passes=1, probe_bs=64, timed_steps=3, amp_dtype=None):
    """Seconds per training image of this network: one warm-up step, then the fastest of a few
    timed steps on random data (the fastest: a one-off stall must not shrink the network).
    A small probe batch keeps this cheap (well under a second on CPU); per-image cost only falls
    at the real (larger) batch size, so the estimate errs on the slow side. `passes`: forward/
    backward passes per training step (SAM: 2). `amp_dtype`: the training's autocast precision,
    so a GPU is timed at the speed it will train at (bf16 tensor cores outrun fp32/TF32)."""
    m = common.build_model(arch).to(device, memory_format=mf)
    m = speed.Autocast(m, amp_dtype) if amp_dtype else m
    x = torch.randn(probe_bs, 3, 32, 32, device=device).contiguous(memory_format=mf)
    y = torch.randint(0, arch["num_classes"], (probe_bs,), device=device)
    times = []
    for _ in range(1 + timed_steps):
        t0 = time.time()
        gradients.scaled_cross_entropy(m(x), y, 0.0, 1.0).backward()
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
    amp_dtype, _ = speed.mixed_precision(device, cfg["amp"])

    def measured(members):  # training seconds per image of the whole ensemble
        if device.type == "cuda":
            return measure_image_s(
                model_arch(cfg, width, num_classes, members), device, mf, passes, probe_bs=bs, amp_dtype=amp_dtype
            )
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
        members = max(
            [
                k
                for k in range(1, top + 1)
                if epochs_fit(k) >= cap and cost(k) * 10_000 / 3 <= cfg["predict_share"] * predict_s
            ],
            default=1,
        )
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
        gradients.scaled_cross_entropy(wrap(net)(xb), yb, 0.0, 1.0).backward()

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
