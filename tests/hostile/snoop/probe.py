"""Looks for what a submission must never see, prints FOUND <what> for each hit."""

import os
import zipfile

MARKERS = (b"HAET-OTHER-RUN-" + b"SECRET",)  # split, so this file does not match itself
SKIP = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/var/lib/dpkg", "/var/cache")


# The Python runtime's packages (torch's CUDA libraries: gigabytes) are the same read-only files for
# every entry; reading them from a cold page cache took the scan past predict's 60 s.
RUNTIME_PACKAGES = ("site-packages", "dist-packages")


def scan():
    for top, dirs, files in os.walk("/", onerror=lambda e: None):
        if top.startswith(SKIP):
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d not in RUNTIME_PACKAGES]
        for name in files:
            path = os.path.join(top, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > 50 * 2**20:
                    continue
                blob = open(path, "rb").read()
            except OSError:
                continue
            for marker in MARKERS:
                if marker in blob:
                    print(f"FOUND marker in {path}", flush=True)
            if path.endswith(".npz"):
                try:
                    keys = zipfile.ZipFile(path).namelist()
                except zipfile.BadZipFile:
                    continue
                print(f"npz {path}: {keys}", flush=True)
                if os.environ.get("HAET_OUTPUT") and any(k.startswith("labels") for k in keys):
                    print(f"FOUND held-out labels in {path}", flush=True)


def host_paths():
    """Host files the test names (the harness's source, the dataset with its labels) in
    host_paths.txt beside this file, wherever the checkout lives."""
    listed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "host_paths.txt")
    return open(listed).read().split() if os.path.exists(listed) else []


def try_paths():
    for path in host_paths() + [
        "/etc/shadow",
        "/root/.bash_history",
        "/var/run/docker.sock",
        "/proc/1/root/etc/hostname",
    ]:
        try:
            with open(path, "rb") as f:
                f.read(16)
            print(f"{'FOUND' if not path.startswith('/proc/1') else 'read'} {path}", flush=True)
        except OSError as exc:
            print(f"denied {path}: {exc.strerror}", flush=True)
    print("uid", os.getuid(), "euid", os.geteuid(), flush=True)
    print("CapEff", [x for x in open("/proc/self/status") if x.startswith("CapEff")][0].split()[1], flush=True)
    print("NoNewPrivs", [x for x in open("/proc/self/status") if x.startswith("NoNewPrivs")][0].split()[1], flush=True)


try_paths()
scan()
