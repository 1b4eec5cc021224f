"""Shared by train.py and predict.py: environment, the ResNet-9 model, checkpoint save/load.

Depends on numpy + torch (+ PyYAML in train.py) only, so the whole submission/ folder can be
copied out as a template.
"""

import os
import tempfile

# The Docker runner's filesystem is read-only except the checkpoint/output dirs and a tmpfs /tmp,
# and HOME may not be writable: point every cache torch might write (hub, inductor, triton) at
# /tmp *before* torch is imported. setdefault keeps whatever the caller chose.
_CACHE = os.path.join(tempfile.gettempdir(), "haet-resnet9-cache")
for _var, _sub in [
    ("TORCH_HOME", "torch"),
    ("TORCHINDUCTOR_CACHE_DIR", "inductor"),
    ("TRITON_CACHE_DIR", "triton"),
    ("XDG_CACHE_HOME", "xdg"),
]:
    os.environ.setdefault(_var, os.path.join(_CACHE, _sub))

import json  # noqa: E402
import re  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402


def require_env(name):
    """The value of a HAET_* variable, or a clear error naming it. The harness sets every one the
    submission contract lists (docs/submission-contract.md), so a missing one means a run by hand."""
    value = os.environ.get(name)
    if value is None or value == "":
        raise SystemExit(
            f"error: environment variable {name} is not set (the HAET harness sets it, as the "
            f"submission contract guarantees; to run this script by hand, set every HAET_* "
            f"variable the contract lists)"
        )
    return value


def pick_device(name):
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: HAET_DEVICE={name} but CUDA is not available")
    return torch.device(name)


def cpu_cores():
    """Cores we may really use: the affinity mask, capped by a cgroup v2 CPU quota (Docker --cpus)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cores = min(cores, max(1, round(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


# ---------------------------------------------------------------------------------------------
# ---- Model: ResNet-9 (Page's DAWNBench network) ----
# ---------------------------------------------------------------------------------------------
def conv_bn(c_in, c_out, act, kernel_size=3, members=1):
    """Conv + BN + activation for `members` networks side by side: channels are stacked member
    by member and the convolution is grouped, so no member sees another's channels; BN and the
    activation act per channel, hence per member, exactly as in separate networks."""
    return nn.Sequential(
        nn.Conv2d(c_in * members, c_out * members, kernel_size, padding=kernel_size // 2, bias=False, groups=members),
        nn.BatchNorm2d(c_out * members),
        act(),
    )


class Residual(nn.Module):
    def __init__(self, c, act, members=1):
        super().__init__()
        self.f = nn.Sequential(conv_bn(c, c, act, members=members), conv_bn(c, c, act, members=members))

    def forward(self, x):
        return x + self.f(x)


def make_act(name, celu_alpha):
    if name == "celu":  # smooth ReLU: Page found it trains better with the whitened input
        return lambda: nn.CELU(alpha=celu_alpha)
    if name == "relu":
        return lambda: nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def widths(width_mult):
    # Never narrower than 8 channels: below that BN statistics get too noisy to be useful.
    return [max(8, int(round(c * width_mult))) for c in (64, 128, 256, 512)]


class ResNet9(nn.Module):
    """prep 64 -> [conv 128, pool, res(128)] -> [conv 256, pool] -> [conv 512, pool, res(512)]
    -> global max-pool -> linear(10) * 0.125.

    With whiten=True the prep layer is a frozen 3x3 patch-whitening conv (27 filters, set from
    the data by train.py) followed by a learned 1x1 conv, as in Page's final DAWNBench entry.

    `members` > 1: an ensemble of that many independent networks trained in lockstep as one
    (grouped convolutions, each member initialised on its own), so a 5000-image set still fills
    a GPU. Every member sees the same batch; the output is [batch, members, classes], and the
    ensemble's prediction is the mean of the members' logits.
    """

    def __init__(
        self, width=1.0, act="relu", celu_alpha=0.075, whiten=False, num_classes=10, out_scale=0.125, members=1
    ):
        super().__init__()
        c0, c1, c2, c3 = widths(width)
        a = make_act(act, celu_alpha)
        k = self.members = members
        if whiten:  # one frozen whitening shared by all members: it is set from the data, not learned
            self.whiten = nn.Conv2d(3, 27, 3, padding=1, bias=True)
            self.whiten.weight.requires_grad_(False)
            self.whiten.bias.requires_grad_(False)
            prep = conv_bn(27, c0, a, kernel_size=1, members=k)
        else:
            self.whiten = None
            prep = conv_bn(3, c0, a, members=k)
        self.layers = nn.Sequential(
            prep,
            conv_bn(c0, c1, a, members=k),
            nn.MaxPool2d(2),
            Residual(c1, a, members=k),
            conv_bn(c1, c2, a, members=k),
            nn.MaxPool2d(2),
            conv_bn(c2, c3, a, members=k),
            nn.MaxPool2d(2),
            Residual(c3, a, members=k),
            nn.AdaptiveMaxPool2d(1),
        )
        # the linear head of every member as one grouped 1x1 conv (same init as nn.Linear)
        self.fc = nn.Conv2d(c3 * k, num_classes * k, 1, bias=False, groups=k)
        self.out_scale = out_scale  # scaling the logits down keeps early softmax un-saturated

    def forward(self, x):
        if self.whiten is not None:
            x = self.whiten(x)
        if self.members > 1:
            x = x.repeat(1, self.members, 1, 1)
        logits = self.fc(self.layers(x)) * self.out_scale
        return logits.view(x.shape[0], self.members, -1)


def build_model(arch):
    """arch: the dict stored in every checkpoint, so predict.py rebuilds exactly what was trained."""
    return ResNet9(
        width=arch["width"],
        act=arch["act"],
        celu_alpha=arch["celu_alpha"],
        whiten=arch["whiten"],
        num_classes=arch["num_classes"],
        members=arch.get("members", 1),
    )


def normalize(images_u8, mean, std):
    """uint8 NHWC (numpy or tensor) -> float NCHW normalized with the training-set statistics."""
    x = torch.as_tensor(images_u8).permute(0, 3, 1, 2).float().div_(255)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# ---------------------------------------------------------------------------------------------
# ---- Checkpoints: atomic write, keep the two newest, load the newest that is complete ----
# ---------------------------------------------------------------------------------------------
CKPT_RE = re.compile(r"^ckpt-(\d{6,})\.pt$")  # temp files (.ckpt-*.tmp) can never match


def save_checkpoint(directory, seq, state_dict, meta, keep=2):
    """Write {model: state_dict, meta: JSON} to directory/ckpt-<seq>.pt atomically: temp file,
    fsync, os.replace. `meta` (arch, normalization, ...) is stored as a JSON string because
    torch 1.13's weights_only unpickler rejects plain Python floats.

    A SIGKILL at any moment leaves either the previous checkpoints untouched or a complete new
    one; older ones beyond `keep` are removed only after the new one is in place.
    """
    final = os.path.join(directory, f"ckpt-{seq:06d}.pt")
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"model": state_dict, "meta": json.dumps(meta)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    for old in list_checkpoints(directory)[keep:]:
        try:
            os.unlink(old)
        except OSError:
            pass
    return final


def list_checkpoints(directory):
    """Complete-named checkpoints, newest (highest sequence number) first."""
    names = [(int(m.group(1)), n) for n in os.listdir(directory) if (m := CKPT_RE.match(n))]
    return [os.path.join(directory, n) for _, n in sorted(names, reverse=True)]


def _torch_load(path):
    try:  # weights_only (torch >= 1.13): never unpickle arbitrary objects
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # older torch without the argument
        return torch.load(path, map_location="cpu")


def load_latest(directory):
    """(model, meta) from the newest checkpoint that loads and matches its architecture."""
    errors = []
    for path in list_checkpoints(directory):
        try:
            payload = _torch_load(path)
            meta = json.loads(payload["meta"])
            model = build_model(meta["arch"])
            model.load_state_dict(payload["model"])  # strict: a wrong/partial state fails here
            return model, meta
        except Exception as e:  # truncated / corrupt file: fall back to the previous one
            errors.append(f"{os.path.basename(path)}: {type(e).__name__}: {e}")
    raise SystemExit(
        f"error: no loadable checkpoint in {directory}" + ("".join("\n  " + e for e in errors) or " (none saved)")
    )
