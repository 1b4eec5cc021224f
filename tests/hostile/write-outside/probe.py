"""Tries to write everywhere; prints WROTE <path> where it could, refused <path> where not."""

TARGETS = [
    "/evil",
    "/etc/evil",
    "/usr/evil",
    "/submission/evil",
    "/submission/train.py",
    "/data/evil",
    "/checkpoints/evil",
    "/checkpoints/../evil",
    "/haet/evil",
    "/output/evil",
    "/tmp/evil",
    "/dev/shm/evil",
    "/var/tmp/evil",
    "/root/evil",
    "/proc/sys/kernel/hostname",
]
for path in TARGETS:
    try:
        with open(path, "a") as f:
            f.write("evil\n")
        print(f"WROTE {path}", flush=True)
    except OSError as exc:
        print(f"refused {path}: {exc.strerror}", flush=True)
