#!/usr/bin/env python3
"""Gatehouse's login overhead with the back-end work held equal.

The rig's "direct-a" target logs in back-end A's users on A only, while a proxy target (nginx,
Perdition, Gatehouse) gets every user, half of them on back-end B: two Dovecot instances with two sets
of login, auth and mail processes then share the two cores, which costs Dovecot more CPU per login on
its own. This script runs, interleaved and in one run, mailload cycles (c=16 by default) in three
ways and sums the CPU of each process tree per completed cycle:
  direct    A's users straight to back-end A          (the rig's direct-a)
  gh-A      A's users through Gatehouse               (the same back-end work, plus the proxy)
  gh-AB     every user through Gatehouse              (what the rig measures for every proxy)
It needs the rig up (../shared/bench env-up.sh; tests/bench/run.sh with KEEP=1 leaves it up) and
starts its own Gatehouse (static directory) from $GATEHOUSE_BIN or build-bench/gatehouse.
  same_users.py [--mode login|pop3] [--conc 16] [--duration 8] [--reps 2]
"""
import argparse
import json
import os
import subprocess

from bench_gatehouse import Gatehouse, config_for_rig, pid_of, require
from proc_cpu import tree_cpu_seconds

RIG = "/tmp/bench"

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--mode", choices=["login", "pop3"], default="login")
ap.add_argument("--conc", type=int, default=16)
ap.add_argument("--duration", type=int, default=8)
ap.add_argument("--reps", type=int, default=2)
a = ap.parse_args()


require(os.path.join(RIG, "mailload"), "/tmp/bench-dovA/run/master.pid")
with Gatehouse(config_for_rig("gh-same-users-")) as gh:
    trees = {"dovecot": [pid_of("/tmp/bench-dovA/run/master.pid"), pid_of("/tmp/bench-dovB/run/master.pid")],
             "gatehouse": [gh.pid]}
    direct_port, proxy_port = (20143, 20443) if a.mode == "login" else (20110, 20410)
    a_only = ["--user-mod", "2", "--user-rem", "0"]
    variants = {"direct": ["-h", "127.0.1.1", "-p", str(direct_port)] + a_only,
                "gh-A": ["-h", "127.0.0.1", "-p", str(proxy_port)] + a_only,
                "gh-AB": ["-h", "127.0.0.1", "-p", str(proxy_port)]}
    results = {}
    for rep in range(a.reps):
        for name, target in variants.items():
            before = {k: tree_cpu_seconds(v) for k, v in trees.items()}
            out = subprocess.run([os.path.join(RIG, "mailload"), "-m", a.mode, "-c", str(a.conc), "-d",
                                  str(a.duration), "--users", "1000"] + target,
                                 capture_output=True, text=True, timeout=a.duration + 60).stdout
            after = {k: tree_cpu_seconds(v) for k, v in trees.items()}
            js = json.loads(next(l[5:] for l in out.splitlines() if l.startswith("JSON ")))
            ok = max(js["ok"], 1)
            row = {"rate": js["rate"], "errors": js["errors"],
                   **{f"{k}_ms": (after[k] - before[k]) * 1000 / ok for k in trees}}
            results.setdefault(name, []).append(row)
            print(f"rep {rep + 1}  {name:7} {a.mode} c={a.conc}  {js['rate']:8.1f}/s  errors {js['errors']}  "
                  f"Dovecot {row['dovecot_ms']:.3f} ms/op  Gatehouse {row['gatehouse_ms']:.3f} ms/op", flush=True)
    rate = {k: sum(r["rate"] for r in v) / len(v) for k, v in results.items()}
    print(f"ratio to direct: gh-A {rate['gh-A'] / rate['direct']:.2f}  gh-AB {rate['gh-AB'] / rate['direct']:.2f}")
