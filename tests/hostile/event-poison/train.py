"""Events a JSON reader chokes on, from the first second and again before each signal: nesting
deep enough to raise RecursionError (not a ValueError) in json.loads, NaN and Infinity values
(valid for Python's json, poison for plots and math), a time of 1e999, numbers too long to
convert, a line past the harness's line cap, invalid UTF-8, non-object JSON, and a flood of
`{"event": ...}` lines whose "time" lies in the future or the past. The harness must neither crash
nor stall: the signals go out on time and the run ends with a result.json and a report."""

import sys

sys.dont_write_bytecode = True
import os
import time

import kit

kit.save_model()
kit.stubborn()
kit.witnesses()


def poison():
    now = time.time()
    return b"".join(
        [
            b"[" * 60000 + b"\n",
            b'{"a":' * 30000 + b"1" + b"}" * 30000 + b"\n",
            b'{"event":"epoch","loss":NaN,"acc":Infinity,"lr":-Infinity,"time":%.3f}\n' % now,
            b'{"event":"epoch","epoch":1e999,"time":1e999}\n',
            b'{"event":"epoch","epoch":' + b"9" * 5000 + b',"time":%.3f}\n' % now,
            b'{"event":"' + b"a" * 70000 + b'"}\n',
            b'\xff\xfe\xfd{"event":"bad-utf8"}\n',
            b'[1,2,3]\n"just a string"\n42\nnull\n',
            b'{"event":{"nested":[1,{"x":NaN}]},"time":"yesterday"}\n',
            b'{"event":"future","train_loss":1,"time":%.3f}\n' % (now + 1e9),
            b'{"event":"past","train_loss":1,"time":-1e308}\n',
        ]
    )


fd = os.open(kit.EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
moments = [time.time() + 0.5, kit.TERM_AT - 0.6, kit.TERM_AT - 0.3, kit.DEADLINE - 0.6, kit.DEADLINE - 0.3]
for moment in moments:
    kit.sleep_until(moment)
    os.write(fd, poison())
kit.idle()
