#!/usr/bin/env python3
"""Memory per idle session of a running proxy, over plaintext or implicit TLS.

Opens N sessions with the rig's load generator (`mailload -m idle`: LOGIN, SELECT, IDLE, held for
H seconds), reads the proxy's Rss/Pss from /proc/PID/smaps_rollup before the sessions and while they
are all held, and prints (held - before) / N. The rig's run.sh measures the plaintext case the same
way; this adds TLS, which it does not cover.
  idle_memory.py --pid PID --port 20493 --tls [-n 2000] [--hold 15]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--pid", type=int, required=True, help="the proxy's pid")
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--tls", action="store_true")
ap.add_argument("-n", type=int, default=2000)
ap.add_argument("--hold", type=int, default=15)
ap.add_argument("--mailload", default="/tmp/bench/mailload")
a = ap.parse_args()


def memory_kb(pid):
    out = {"rss": 0, "pss": 0}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key = line.split(":")[0].lower()
            if key in out:
                out[key] = int(line.split()[1])
    return out


before = memory_kb(a.pid)
ready = os.path.join(tempfile.mkdtemp(prefix="gh-idle-"), "ready")
cmd = [a.mailload, "-m", "idle", "-h", a.host, "-p", str(a.port), "-c", str(a.n), "-H", str(a.hold),
       "-d", "120", "--ready-file", ready] + (["--tls"] if a.tls else [])
proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
held = None
deadline = time.monotonic() + 180
while time.monotonic() < deadline and proc.poll() is None:
    if os.path.exists(ready):
        time.sleep(4)  # let the allocator settle after the ramp (a measurement pause, not a sync)
        held = memory_kb(a.pid)
        break
    time.sleep(0.2)
out, _ = proc.communicate(timeout=240)
last = [l for l in out.splitlines() if l.startswith("JSON ")]
result = json.loads(last[-1][5:]) if last else {}
if held is None:
    sys.exit(f"sessions were never all held:\n{out[-2000:]}")
n = result.get("held", a.n) or a.n
print(json.dumps({"tls": a.tls, "sessions": n,
                  "rss_kb_per_session": round((held["rss"] - before["rss"]) / n, 2),
                  "pss_kb_per_session": round((held["pss"] - before["pss"]) / n, 2)}))
