#!/usr/bin/env python3
"""TLS handshakes on the IMAPS port, full and resumed, Gatehouse and nginx in one run.

Mail clients reconnect all day and offer the session of their last connection. This runs `openssl s_time`
(one client, handshakes only) interleaved against Gatehouse (static directory, one session ticket key file,
as a pool of instances would share) and against the rig's nginx (shared session cache and tickets), and
divides each proxy's CPU (nginx: with its auth helper, idle here) by the connections made:
  tls13-new    TLS 1.3 full handshakes (X25519, ECDSA P-256)
  tls12-new    TLS 1.2 full handshakes
  tls12-reuse  TLS 1.2 resumed from the ticket of the first connection
TLS 1.3 resumption is not measured: s_time takes its session before the server's tickets arrive, and the
rig's `mailload --tls-resume` frees its connections without a close_notify, which makes OpenSSL mark the
session not resumable. tests/integration/test_tls_sessions.py shows TLS 1.3 resumption working.
It needs the rig up (tests/bench/run.sh with KEEP=1 leaves it up) and starts its own Gatehouse from
$GATEHOUSE_BIN or build-bench/gatehouse.
  tls_handshakes.py [--duration 4] [--reps 2]
"""
import argparse
import json
import os
import subprocess

from bench_gatehouse import Gatehouse, config_for_rig, pid_of, require
from proc_cpu import tree_cpu_seconds


ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--duration", type=int, default=4)
ap.add_argument("--reps", type=int, default=2)
a = ap.parse_args()


require("/tmp/bench-nginx/nginx.pid", "/tmp/bench-auth/auth.pid")
config_path = config_for_rig("gh-tls-handshakes-")
key_path = os.path.join(os.path.dirname(config_path), "ticket.key")
with open(key_path, "wb") as f:
    f.write(os.urandom(80))
config = json.load(open(config_path))
config["tls"]["session_ticket_key_files"] = [key_path]
json.dump(config, open(config_path, "w"), indent=1)
imaps_port = next(l["port"] for l in config["listeners"] if l.get("name") == "imaps")

with Gatehouse(config_path) as gh:
    trees = {"gatehouse": [gh.pid],
             "nginx": [pid_of("/tmp/bench-nginx/nginx.pid"), pid_of("/tmp/bench-auth/auth.pid")]}
    variants = {f"{proxy}-{kind}": (proxy, port, args)
                for proxy, port in (("gh", imaps_port), ("nginx", 20993))
                for kind, args in (("tls13-new", ["-tls1_3", "-new"]), ("tls12-new", ["-tls1_2", "-new"]),
                                   ("tls12-reuse", ["-tls1_2", "-reuse"]))}
    tree_of = {"gh": "gatehouse", "nginx": "nginx"}
    results = {}
    for rep in range(a.reps):
        for name, (proxy, port, args) in variants.items():
            before = tree_cpu_seconds(trees[tree_of[proxy]])
            out = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-time", str(a.duration)]
                                 + args, capture_output=True, text=True, timeout=a.duration + 60,
                                 stdin=subprocess.DEVNULL).stdout
            after = tree_cpu_seconds(trees[tree_of[proxy]])
            line = next(l for l in out.splitlines() if " connections in " in l)
            count, secs = int(line.split()[0]), float(line.split()[3].rstrip("s;"))
            row = {"rate": count / secs, "cpu_ms": (after - before) * 1000 / max(count, 1)}
            results.setdefault(name, []).append(row)
            print(f"rep {rep + 1}  {name:17} {row['rate']:8.1f} handshakes/s (client time)  "
                  f"proxy {row['cpu_ms']:.3f} ms/handshake", flush=True)

    def mean(name, key):
        return sum(r[key] for r in results[name]) / len(results[name])

    for kind in ("tls13-new", "tls12-new", "tls12-reuse"):
        print(f"{kind:12} CPU per handshake: Gatehouse {mean('gh-' + kind, 'cpu_ms'):.3f} ms, "
              f"nginx {mean('nginx-' + kind, 'cpu_ms'):.3f} ms")
