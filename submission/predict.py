"""Predict phase: newest complete checkpoint -> HAET_OUTPUT/predictions.csv (index,label).

The test-time views are added one at a time, and only while the next one fits before SIGTERM
(HAET_DEADLINE - HAET_GRACE_S - SAFETY_S): predictions are always written in time, with as many
views as this machine allowed (all of them, normally)."""

import os
import signal
import time

# Installed before torch is imported: a SIGTERM during the import still lets predict write.
STOP = {"requested": False}
signal.signal(signal.SIGTERM, lambda signum, frame: STOP.update(requested=True))

import common  # noqa: E402,F401  (sets the /tmp cache dirs before torch is imported)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SAFETY_S = 0.5  # writing 1000 rows takes milliseconds, and the process exits without teardown (os._exit)
# A batch starts only if one this many times slower than the last would still end in time: on a
# loaded 2-core machine a view of 200 images took 0.5 s longer than the one before it and ended
# after SIGTERM. A GPU batch takes milliseconds, so the room costs it no view.
SLOWDOWN = 2.0
SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # right, left, down, up, in units of tta_shift


def view_specs(tta, tta_shift):
    """Test-time views (the checkpoint's `tta` and `tta_shift`, from the HP of train.py), most
    useful first: the image and, with tta, its mirror; with tta_shift, also both moved that many
    pixels up, down, left and right (reflect-padded, as the training crops are)."""
    flips = (False, True) if tta else (False,)
    specs = [(0, 0, flip) for flip in flips]
    if tta_shift:
        specs += [(dy * tta_shift, dx * tta_shift, flip) for dy, dx in SHIFTS for flip in flips]
    return specs


def view(x, dy, dx, flip):
    if dy or dx:
        pad = max(abs(dy), abs(dx))
        xp = F.pad(x, (pad,) * 4, mode="reflect")
        x = xp[:, :, pad + dy : pad + dy + 32, pad + dx : pad + dx + 32]
    return x.flip(3) if flip else x


@torch.no_grad()
def predict(model, images_u8, mean, std, device, tta=True, tta_shift=0, batch_size=250, t_end=None):
    """Labels from the members' logits averaged, then summed over the views. A view is started
    only when another like the last would still end by `t_end`, and within it a batch only when
    one SLOWDOWN times slower than the last would (and no SIGTERM came); a view cut short is
    dropped. The first view always runs. Returns (labels, views used,
    views planned)."""
    model = model.to(device).eval()
    specs = view_specs(tta, tta_shift)
    x = common.normalize(images_u8, mean, std).to(device) if len(images_u8) else None
    if x is not None:  # the first call's one-time set-up (kernels, allocations) is not a view's cost
        model(x[:8])
    total, used, last, batch_s = None, 0, 0.0, 0.0
    for dy, dx, flip in specs:
        if used and (STOP["requested"] or (t_end is not None and time.time() + last > t_end)):
            break
        t0, logits = time.time(), []
        for i in range(0, len(images_u8), batch_size):
            # On a machine loaded mid-view, a batch that merely started before t_end ended 0.9 s
            # past it, after SIGTERM.
            if used and (STOP["requested"] or (t_end is not None and time.time() + SLOWDOWN * batch_s > t_end)):
                logits = None  # out of time mid-view: keep the views already summed
                break
            t_batch = time.time()
            logits.append(model(view(x[i : i + batch_size], dy, dx, flip)).float().mean(1))
            batch_s = time.time() - t_batch
        if logits is None:
            break
        if logits:
            part = torch.cat(logits)
            total = part if total is None else total + part
        used, last = used + 1, time.time() - t0
    labels = total.argmax(1).cpu().numpy() if total is not None else np.zeros(0, dtype=np.int64)
    return labels, used, len(specs)


def main():
    data_dir = common.require_env("HAET_DATA")
    ckpt_dir = common.require_env("HAET_CHECKPOINTS")
    out_dir = common.require_env("HAET_OUTPUT")
    torch.manual_seed(int(common.require_env("HAET_SEED")))
    device = common.pick_device(common.require_env("HAET_DEVICE"))
    if device.type == "cpu":
        torch.set_num_threads(common.cpu_cores())

    model, meta = common.load_latest(ckpt_dir)
    with np.load(os.path.join(data_dir, "test.npz")) as d:
        images = d["images"]
    t_end = (
        float(common.require_env("HAET_DEADLINE")) - float(common.require_env("HAET_GRACE_S")) - SAFETY_S
    )  # SIGTERM comes at deadline - grace
    t_views = time.time()
    labels, used, planned = predict(
        model,
        images,
        meta["mean"],
        meta["std"],
        device,
        tta=meta.get("tta", True),
        tta_shift=meta.get("tta_shift", 0),
        t_end=t_end,
    )

    tmp = os.path.join(out_dir, ".predictions.csv.tmp")
    with open(tmp, "w") as f:
        f.write("index,label\n")
        f.writelines(f"{i},{int(label)}\n" for i, label in enumerate(labels))
    os.replace(tmp, os.path.join(out_dir, "predictions.csv"))
    budget = float(common.require_env("HAET_BUDGET_S"))
    started = t_end + SAFETY_S + float(common.require_env("HAET_GRACE_S")) - budget  # the phase's start
    print(
        f"wrote {len(labels)} predictions (checkpoint step {meta.get('step')}, epoch {meta.get('epoch')}; "
        f"{used} of {planned} test-time views from {t_views - started:.1f} s to {time.time() - started:.1f} s "
        f"of a {budget:g} s budget)",
        flush=True,
    )


if __name__ == "__main__":
    main()
    # Everything is written and flushed; torch's interpreter teardown took 1.6 s on a loaded
    # 2-core machine, time the predict budget does not have to spare.
    os._exit(0)
