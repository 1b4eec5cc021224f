"""Predict phase: newest complete checkpoint -> HAET_OUTPUT/predictions.csv (index,label)."""
import os

import numpy as np

import common  # noqa: F401  (sets the /tmp cache dirs before torch is imported)
import torch
import torch.nn.functional as F


def views(x, tta, tta_shift):
    """Test-time views (the checkpoint's `tta` and `tta_shift`, from the HP of train.py): the
    image and, with tta, its mirror; with tta_shift, also both moved that many pixels up, down,
    left and right (reflect-padded, as the training crops are)."""
    out = [x, x.flip(3)] if tta else [x]
    if tta_shift:
        xp = F.pad(x, (tta_shift,) * 4, mode="reflect")
        for dy, dx in ((0, tta_shift), (0, -tta_shift), (tta_shift, 0), (-tta_shift, 0)):
            top, left = tta_shift + dy, tta_shift + dx
            moved = xp[:, :, top:top + 32, left:left + 32]
            out += [moved, moved.flip(3)] if tta else [moved]
    return out


@torch.no_grad()
def predict(model, images_u8, mean, std, device, tta=True, tta_shift=0, batch_size=500):
    model = model.to(device).eval()
    labels = []
    for i in range(0, len(images_u8), batch_size):
        x = common.normalize(images_u8[i:i + batch_size], mean, std).to(device)
        # the members' logits averaged, then summed over the views
        logits = sum(model(v).float().mean(1) for v in views(x, tta, tta_shift))
        labels.append(logits.argmax(1).cpu())
    return torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64)


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
    labels = predict(model, images, meta["mean"], meta["std"], device, tta=meta.get("tta", True),
                     tta_shift=meta.get("tta_shift", 0))

    tmp = os.path.join(out_dir, ".predictions.csv.tmp")
    with open(tmp, "w") as f:
        f.write("index,label\n")
        f.writelines(f"{i},{int(l)}\n" for i, l in enumerate(labels))
    os.replace(tmp, os.path.join(out_dir, "predictions.csv"))
    print(f"wrote {len(labels)} predictions (checkpoint step {meta.get('step')}, "
          f"epoch {meta.get('epoch')})", flush=True)


if __name__ == "__main__":
    main()
