"""Tries to reach the network (outside hosts, DNS, the engine's socket) and reports what happened."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import os
import socket

for host, port in (("1.1.1.1", 53), ("8.8.8.8", 443), ("172.17.0.1", 2375)):
    try:
        socket.create_connection((host, port), timeout=2).close()
        print(f"NETWORK-OK {host}:{port}", flush=True)
    except OSError as exc:
        print(f"blocked {host}:{port}: {exc}", flush=True)
try:
    socket.getaddrinfo("deb.debian.org", 80)
    print("NETWORK-OK dns", flush=True)
except OSError as exc:
    print(f"blocked dns: {exc}", flush=True)
for sock in ("/var/run/docker.sock", "/run/docker.sock"):
    print(("FOUND " if os.path.exists(sock) else "absent ") + sock, flush=True)
# The kernel's own list (not /sys/class/net: a sandbox need not mount sysfs).
print("interfaces:", sorted(name for _, name in socket.if_nameindex()), flush=True)
