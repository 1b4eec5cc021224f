"""Keeps (re)writing its checkpoint in a tight loop until it is killed, and names each file after
its own clock: alive-<who><seconds since HAET_DEADLINE>. Three writers, so the SIGKILL must reach
every process: the main process (a fresh file each time, no pause), a child in its process group
(one inode renamed over and over) and an escaped process (setsid, re-parented away). Every file's
mtime is forged to long before the deadline, so a harness that trusts mtimes is fooled.
The checkpoint that survives in the run names how late its writer was still alive."""

import sys

sys.dont_write_bytecode = True
import kit

kit.save_model()
kit.stubborn()
kit.witnesses(pause=0)
kit.child(lambda: kit.alive("ren", rename=True), "alive-ren")
kit.alive("main")
