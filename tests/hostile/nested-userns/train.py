"""Tries to make a user namespace of its own (where it would be root again, with every
namespaced kernel interface in reach), then saves a model: the sandbox must refuse the first.
The try comes first: unshare(CLONE_NEWUSER) needs a single-threaded process (numpy starts threads)."""

import ctypes
import os

CLONE_NEWUSER = 0x10000000
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(CLONE_NEWUSER) == 0:
    print("UNSHARED a user namespace, uid", os.getuid(), flush=True)
else:
    print("refused unshare:", os.strerror(ctypes.get_errno()), flush=True)

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))
