"""A bounded fork storm right before the deadlines: 0.3 s before SIGTERM the entry forks itself
into 32 busy-spinning processes (every other child calls setsid, leaving the process group), and
0.3 s before SIGKILL each of them forks once more: 64 spinners on the machine's cores, all
ignoring SIGTERM, competing with the harness for the CPU just when its signals are due. (Bounded
so a local run stays survivable; tests/hostile/fork-bomb is the unbounded one, Docker only.)"""

import sys

sys.dont_write_bytecode = True
import os

import kit

kit.save_model()
kit.stubborn()
kit.witnesses()


def fork_once(i):
    if os.fork() == 0:
        if i % 2:
            os.setsid()
        kit.record("storm")
        return True
    return False


kit.sleep_until(kit.TERM_AT - 0.3)
for i in range(5):
    fork_once(i)
wave = 1
while True:
    kit.give_up()
    if wave and kit.since_deadline() > -0.3:
        wave = 0
        fork_once(1)
    sum(range(2000))
