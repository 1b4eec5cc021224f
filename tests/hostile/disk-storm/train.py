"""Heavy disk I/O from a second before SIGTERM until killed: one process rewrites a 16 MiB file in
/tmp with an fsync after every MiB, another does the same in the checkpoint directory, a third
creates, fsyncs and deletes small files and calls sync() (which flushes every filesystem of the
machine, the harness's own log and result files included). Under the Docker runner /tmp and
/checkpoints are tmpfs: the storm is memory churn there."""

import sys

sys.dont_write_bytecode = True
import os
import tempfile

import kit

kit.save_model()
kit.stubborn()
kit.witnesses()

scratch = kit.CONFIG.get("scratch") or tempfile.gettempdir()
try:
    os.makedirs(scratch, exist_ok=True)
except OSError:
    scratch = tempfile.gettempdir()
CHUNK = os.urandom(2**20)


def rewrite(path, size_mb=16):
    with open(path, "wb") as f:
        while True:
            f.seek(0)
            for _ in range(size_mb):
                kit.give_up()
                try:
                    f.write(CHUNK)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError:
                    pass


def small_files():
    n = 0
    while True:
        kit.give_up()
        n += 1
        path = os.path.join(scratch, f"storm-small-{os.getpid()}")
        try:
            with open(path, "wb") as f:
                f.write(CHUNK[:4096])
                f.flush()
                os.fsync(f.fileno())
            os.unlink(path)
        except OSError:
            pass
        if n % 50 == 0:
            os.sync()


kit.sleep_until(kit.TERM_AT - 1.0)
kit.child(lambda: rewrite(os.path.join(scratch, f"storm-{os.getpid()}")), "disk")
kit.child(lambda: rewrite(os.path.join(kit.CHECKPOINTS, "storm-ckpt")), "disk")
kit.child(small_files, "disk")
kit.idle()
