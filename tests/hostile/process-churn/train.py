"""Processes coming and going all the time, so that any listing of the phase's processes races
with exits: two "population" forkers each keep 48 children alive that live 10-30 ms and are
reaped the moment they die (every 16th escapes with setsid and a double fork and lives a moment),
a third process spawns short `sleep` commands with subprocess (every third in a new session)
without waiting for them, and three escaped sleepers (setsid, double fork) sit quietly until
killed. A kill sweep that gives up when one process vanishes mid-listing (measured: 98 % of the
listings of such a tree) signals nobody and leaves the whole phase running."""

import sys

sys.dont_write_bytecode = True
import os
import random
import subprocess
import time

import kit

kit.save_model()
kit.stubborn()
kit.witnesses()


def sleeper():
    while kit.since_deadline() < kit.ESCAPEE_GIVE_UP_S:
        time.sleep(0.05)


def population(n=48, life=0.02):
    alive, count = 0, 0
    while True:
        kit.give_up()
        while alive < n:
            count += 1
            pid = os.fork()
            if pid == 0:
                if count % 16 == 0:
                    os.setsid()
                    if os.fork() == 0:
                        kit.record("churn-escaped")
                        time.sleep(life)
                    os._exit(0)
                time.sleep(life * (0.5 + random.random()))
                os._exit(0)
            alive += 1
        try:
            os.wait()
            alive -= 1
        except ChildProcessError:
            alive = 0


def spawner():
    n, running = 0, []
    while True:
        kit.give_up()
        n += 1
        try:
            p = subprocess.Popen(
                ["sleep", "0.02"], start_new_session=n % 3 == 0, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            kit.record("spawned", p.pid)
            running.append(p)
        except OSError:
            time.sleep(0.01)
        running = [p for p in running if p.poll() is None]


for _ in range(3):
    kit.child(sleeper, "sleeper", escape=True)
kit.child(population, "population")
kit.child(population, "population")
kit.child(spawner, "spawner")
kit.idle()
