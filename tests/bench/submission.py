#!/usr/bin/env python3
"""Submission benchmark: messages per second straight to Postfix versus through Gatehouse (issue 5).

What runs (all on loopback, all started here and stopped by pid in a finally):
  * Dovecot (tests/integration/harness.py) with alice@example.com and bob@example.com in a passwd-file and
    an auth socket for Postfix's SASL;
  * Postfix (tests/integration/postfix.py): one smtpd, SASL through that Dovecot socket and offered over
    plaintext (smtpd_tls_auth_only = no, no TLS: this benchmark instance only), XCLIENT allowed from
    127.0.0.0/8, virtual(8) delivery into bob's Dovecot maildir;
  * Gatehouse (Release build) with a plaintext submission listener (require_tls_for_auth: false), a static
    directory holding alice and `submission.relay_backends = ["smtp"]` pointing at that same Postfix, so
    Gatehouse logs in there with XCLIENT LOGIN=alice.

What is measured: one "message" is a whole client cycle on a fresh connection -- connect, 220, EHLO,
AUTH PLAIN <initial response>, MAIL FROM alice, RCPT TO bob, DATA, ~2 KB of text, ".", QUIT -- with every
reply code checked (a wrong code or an I/O error counts as an error and the cycle starts again; a 250 for
the end of data counts as one message). C asyncio clients (stdlib, in this process, no sleeps) loop for
DURATION seconds or until MAX messages. The two targets, "direct" (clients talk to Postfix's smtpd and
AUTH there) and "gatehouse" (clients talk to Gatehouse, which relays to the same smtpd), are measured
interleaved in ONE run -- direct, gatehouse, direct, gatehouse, ... (REPS pairs) -- at each concurrency
(default 1, the latency-bound case, and 16), after a short unmeasured warm-up of each target.

Per phase: messages/s (messages / wall time from the first connect to the last cycle's end), errors,
p50/p99 of the cycle time and the median time of each step (to see where a proxy adds latency), and CPU
seconds per message of Gatehouse's process, of Postfix (the master and its whole process tree, including
the master's cutime/cstime, so short-lived smtpd/cleanup/virtual children are counted too), of Dovecot
(master and tree) and of this load generator (its own process only: Gatehouse and Dovecot are its
children); "other" is the busy CPU of the whole machine (/proc/stat)
that none of those account for (other tenants, and softirq time of loopback networking), in cores. The
CPU window of a phase runs until Postfix's queue is empty again (messages accepted during the phase are
delivered into the maildir before the next phase starts), so delivery CPU is charged to the phase that
caused it; the time that took is reported as drain_s.

Output: a table per phase, a summary per concurrency (aggregate msg/s per target, the ratio
gatehouse/direct and CPU ms per message), and JSON (default /tmp/bench-submission/results.json).

    tests/bench/submission.py [--duration 10] [--reps 2] [--concurrency 1,16] [--max-messages N]
                              [--results PATH] [--bin PATH]
The binary: --bin, else $GATEHOUSE_BIN, else build-bench/gatehouse (built as Release if missing).
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402
from harness import Dovecot, Gatehouse, listener, user, wait_for  # noqa: E402
from postfix import Postfix  # noqa: E402
from proc_cpu import TICK, process_table, tree_ticks  # noqa: E402

ALICE, ALICE_PW = "alice@example.com", "alice-bench-pass"
BOB, BOB_PW = "bob@example.com", "bob-bench-pass"
IP = "127.0.0.1"
STEPS = ("greeting", "ehlo", "auth", "mail", "rcpt", "data", "eod", "quit")
IO_TIMEOUT = 10.0  # one reply; a whole cycle gets len(STEPS) of these at most
DRAIN_TIMEOUT = 120.0

# ---------------------------------------------------------------------------------------------------
# the set-up: Dovecot, Postfix, Gatehouse


def gatehouse_binary(explicit):
    """--bin, $GATEHOUSE_BIN, or build-bench/gatehouse (configured and built as Release when missing)."""
    path = explicit or os.environ.get("GATEHOUSE_BIN")
    if path:
        return os.path.abspath(path)
    build = os.path.join(REPO, "build-bench")
    path = os.path.join(build, "gatehouse")
    if not os.path.exists(path):
        print("building a Release gatehouse in build-bench ...", flush=True)
        subprocess.run(["cmake", "-S", REPO, "-B", build, "-DCMAKE_BUILD_TYPE=Release"], check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
        subprocess.run(["cmake", "--build", build, "-j2", "--target", "gatehouse"], check=True,
                       stdout=subprocess.DEVNULL, timeout=3600)
    return path


def start_servers(binary, workers, started):
    """Starts Dovecot, Postfix and Gatehouse; appends each to `started` (stopped in reverse order)."""
    dovecot = Dovecot("bench", IP, {ALICE: ALICE_PW, BOB: BOB_PW}, extra_conf=Postfix.dovecot_auth_conf())
    started.append(dovecot)
    dovecot.start()
    postfix = Postfix(ip=IP, mailboxes={ALICE: dovecot.maildir(ALICE), BOB: dovecot.maildir(BOB)},
                      sasl_path=os.path.join(dovecot.root, "run", "auth-postfix"),
                      # AUTH over plaintext for the direct case: this benchmark instance only.
                      extra_main="smtpd_tls_security_level = none\nsmtpd_tls_auth_only = no\n")
    started.append(postfix)
    postfix.start()
    config = {
        "workers": workers,
        "log": {"level": "info"},
        "listeners": [listener("plain", tls="none", require_tls_for_auth=False, protocol="submission",
                               address=IP)],
        "backends": [dovecot.backend_config("A"), postfix.backend_config("smtp")],
        "submission": {"relay_backends": ["smtp"]},
    }
    gatehouse = Gatehouse(config, users=[user(ALICE, ALICE_PW, "A", protocols=("submission",))], binary=binary,
                          workers=workers)
    started.append(gatehouse)
    gatehouse.start()
    return dovecot, postfix, gatehouse


def stop_servers(started):
    """Stops what was started, newest first, each by its pid; keeps going if one fails."""
    for server in reversed(started):
        try:
            if isinstance(server, Gatehouse):
                try:
                    server.stop()
                finally:
                    server.cleanup()
            else:
                server.stop()
        except Exception as e:  # report, and stop the others all the same
            print(f"stopping {type(server).__name__}: {e}", file=sys.stderr, flush=True)


def source_revision():
    """The commit the tree is at and whether it has local changes (the binary may include them)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return {"git_head": head, "local_changes": dirty}
    except (OSError, subprocess.SubprocessError):
        return {}


def nothing_listening(ports):
    """The ports (of the servers we started) on which a connection is still accepted."""
    open_ports = []
    for port in ports:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((IP, port)) == 0:
                open_ports.append(port)
    return open_ports


# ---------------------------------------------------------------------------------------------------
# CPU accounting from /proc (process trees: proc_cpu.py)


def machine_ticks():
    """(busy, total) ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


class CpuMeter:
    """Snapshots of the CPU ticks used by each measured party and by the machine."""

    def __init__(self, gatehouse, postfix, dovecot):
        self.roots = {"gatehouse": gatehouse.proc.pid, "postfix": postfix.pgid, "dovecot": dovecot.proc.pid,
                      "loadgen": os.getpid()}

    def snapshot(self):
        table = process_table()
        # Gatehouse and Dovecot are children of this process: the load generator counts its own time only.
        snap = {name: tree_ticks(table, pid) for name, pid in self.roots.items() if name != "loadgen"}
        _, own, _ = table[self.roots["loadgen"]]
        snap["loadgen"] = own
        snap["machine_busy"], snap["machine_total"] = machine_ticks()
        snap["wall"] = time.monotonic()
        return snap

    @staticmethod
    def delta(before, after):
        """CPU seconds per party, the machine's other busy time in cores, and the wall time of the window."""
        d = {k: (after[k] - before[k]) / TICK for k in before if k != "wall"}
        wall = after["wall"] - before["wall"]
        measured = sum(d[k] for k in ("gatehouse", "postfix", "dovecot", "loadgen"))
        return {"cpu_s": {k: d[k] for k in ("gatehouse", "postfix", "dovecot", "loadgen")},
                "other_cores": max(0.0, d["machine_busy"] - measured) / wall if wall > 0 else 0.0,
                "machine_busy_cores": d["machine_busy"] / wall if wall > 0 else 0.0,
                "window_s": wall}


def queue_files(postfix):
    """Messages still in Postfix's queue (incoming, active, deferred, maildrop, hold)."""
    count = 0
    for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(os.path.join(postfix.queue_dir, sub)):
            count += len(files)
    return count


def delivered(dovecot, login):
    """Messages in the user's maildir (new/ and cur/)."""
    md = dovecot.maildir(login)
    return sum(len(os.listdir(os.path.join(md, sub))) for sub in ("new", "cur"))


# ---------------------------------------------------------------------------------------------------
# the load generator


def make_body(size=2048):
    """A ~`size` byte text body of 72-character lines (none starts with a dot: no dot-stuffing needed)."""
    line = ("The quick brown fox jumps over the lazy dog; benchmark filler text. 0123")[:72]
    lines = [line] * max(1, size // (len(line) + 2))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


class SmtpError(Exception):
    pass


class Stats:
    """What the clients of one phase counted."""

    def __init__(self):
        self.messages = 0
        self.errors = 0
        self.error_samples = []
        self.cycle_s = []
        self.step_s = {s: [] for s in STEPS}

    def error(self, what):
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


async def _reply(reader):
    """The code of one whole (possibly multi-line) reply."""
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise SmtpError(f"connection closed (got {line!r})")
        if len(line) < 4 or not line[:3].isdigit():
            raise SmtpError(f"malformed reply {line!r}")
        if line[3:4] != b"-":
            return int(line[:3])


async def one_cycle(port, auth, body, seq, stats, steps):
    """One message on a fresh connection; every step's reply code is checked. Returns True on a message."""
    reader, writer = await asyncio.open_connection(IP, port)
    try:
        t = time.perf_counter()

        async def step(name, command, expected):
            nonlocal t
            if command:
                writer.write(command)
            code = await _reply(reader)
            now = time.perf_counter()
            steps[name] = now - t
            t = now
            if code != expected:
                raise SmtpError(f"{name}: {code}, expected {expected}")

        await step("greeting", None, 220)
        await step("ehlo", b"EHLO bench.example\r\n", 250)
        await step("auth", auth, 235)
        await step("mail", b"MAIL FROM:<" + ALICE.encode() + b">\r\n", 250)
        await step("rcpt", b"RCPT TO:<" + BOB.encode() + b">\r\n", 250)
        await step("data", b"DATA\r\n", 354)
        header = (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: bench {seq}\r\n"
                  f"Message-ID: <bench.{seq}.{os.getpid()}@example.com>\r\n\r\n").encode()
        await step("eod", header + body + b".\r\n", 250)
        stats.messages += 1
        await step("quit", b"QUIT\r\n", 221)
        return True
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def client_loop(port, auth, body, stop_at, max_messages, stats, counter):
    cycle_timeout = IO_TIMEOUT * len(STEPS)
    while time.monotonic() < stop_at and stats.messages < max_messages:
        counter[0] += 1
        steps = {}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(cycle_timeout):
                await one_cycle(port, auth, body, counter[0], stats, steps)
        except (SmtpError, OSError, TimeoutError, asyncio.IncompleteReadError) as e:
            stats.error(f"{type(e).__name__}: {e}")
            continue
        stats.cycle_s.append(time.perf_counter() - started)
        for name, value in steps.items():
            stats.step_s[name].append(value)


async def run_load(port, concurrency, duration, max_messages):
    auth = ("AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{ALICE_PW}".encode()).decode() + "\r\n").encode()
    body = make_body()
    stats = Stats()
    counter = [0]
    start = time.monotonic()
    await asyncio.gather(*(client_loop(port, auth, body, start + duration, max_messages, stats, counter)
                           for _ in range(concurrency)))
    return stats, time.monotonic() - start


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------------------------
# one phase and the whole run


def wait_drained(postfix, timeout=DRAIN_TIMEOUT):
    """Waits until Postfix's queue is empty; returns the seconds it took (None if it did not drain)."""
    start = time.monotonic()
    try:
        wait_for(lambda: queue_files(postfix) == 0, timeout, "postfix queue to drain", interval=0.05)
    except TimeoutError:
        return None
    return time.monotonic() - start


def phase(target, port, concurrency, duration, max_messages, meter, postfix):
    """Runs the load against one target and returns its figures."""
    wait_drained(postfix)
    before = meter.snapshot()
    stats, elapsed = asyncio.run(run_load(port, concurrency, duration, max_messages))
    drain = wait_drained(postfix)
    after = meter.snapshot()
    cpu = CpuMeter.delta(before, after)
    n = stats.messages
    per_msg_ms = {k: (v * 1000.0 / n if n else None) for k, v in cpu["cpu_s"].items()}
    return {
        "target": target, "concurrency": concurrency, "messages": n, "errors": stats.errors,
        "error_samples": stats.error_samples, "elapsed_s": elapsed, "msgs_per_s": n / elapsed if elapsed else 0.0,
        "cycle_ms": {"p50": _ms(percentile(stats.cycle_s, 50)), "p99": _ms(percentile(stats.cycle_s, 99))},
        "step_ms_p50": {s: _ms(percentile(v, 50)) for s, v in stats.step_s.items()},
        "cpu_s": cpu["cpu_s"], "cpu_ms_per_msg": per_msg_ms, "other_cores": cpu["other_cores"],
        "machine_busy_cores": cpu["machine_busy_cores"], "window_s": cpu["window_s"], "drain_s": drain,
    }


def _ms(seconds):
    return None if seconds is None else seconds * 1000.0


def _f(value, fmt):
    return "-" if value is None else format(value, fmt)


def print_row(r, rep):
    c = r["cpu_ms_per_msg"]
    print(f"{r['concurrency']:>3} {r['target']:<9} {rep:>3} {r['messages']:>6} {r['msgs_per_s']:>8.1f} "
          f"{_f(r['cycle_ms']['p50'], '7.2f')} {_f(r['cycle_ms']['p99'], '7.2f')} {r['errors']:>4} "
          f"{_f(c['gatehouse'], '6.3f')} {_f(c['postfix'], '7.3f')} {_f(c['dovecot'], '6.3f')} "
          f"{_f(c['loadgen'], '6.3f')} {r['other_cores']:>5.2f} {_f(r['drain_s'], '6.2f')}", flush=True)


HEADER = ("  c target    rep   msgs    msg/s  p50 ms  p99 ms  err  gh ms   pf ms  dc ms  lg ms other drain\n"
          "                                                        (CPU ms per message)        cores   s")


def summarize(results, concurrency):
    """Aggregate figures per target at one concurrency and the ratio gatehouse/direct."""
    out = {}
    for target in ("direct", "gatehouse"):
        rows = [r for r in results if r["concurrency"] == concurrency and r["target"] == target]
        msgs = sum(r["messages"] for r in rows)
        secs = sum(r["elapsed_s"] for r in rows)
        out[target] = {
            "msgs_per_s": msgs / secs if secs else 0.0,
            "messages": msgs, "errors": sum(r["errors"] for r in rows),
            "cpu_ms_per_msg": {k: (sum(r["cpu_s"][k] for r in rows) * 1000.0 / msgs if msgs else None)
                               for k in ("gatehouse", "postfix", "dovecot", "loadgen")},
            "cycle_ms_p50": statistics.median([r["cycle_ms"]["p50"] for r in rows if r["cycle_ms"]["p50"]] or [0]),
            "cycle_ms_p99": max([r["cycle_ms"]["p99"] for r in rows if r["cycle_ms"]["p99"]] or [0]),
            "step_ms_p50": {s: statistics.median([r["step_ms_p50"][s] for r in rows if r["step_ms_p50"][s]] or [0])
                            for s in STEPS},
            "other_cores": statistics.mean([r["other_cores"] for r in rows]) if rows else 0.0,
        }
    d, g = out["direct"]["msgs_per_s"], out["gatehouse"]["msgs_per_s"]
    out["ratio_gatehouse_over_direct"] = g / d if d else None
    pairs = [(a, b) for a, b in zip(
        [r for r in results if r["concurrency"] == concurrency and r["target"] == "direct"],
        [r for r in results if r["concurrency"] == concurrency and r["target"] == "gatehouse"])]
    out["ratio_per_rep"] = [b["msgs_per_s"] / a["msgs_per_s"] if a["msgs_per_s"] else None for a, b in pairs]
    return out


def print_summary(concurrency, s):
    d, g = s["direct"], s["gatehouse"]
    print(f"\nc={concurrency}: direct {d['msgs_per_s']:.1f} msg/s, gatehouse {g['msgs_per_s']:.1f} msg/s, "
          f"ratio gatehouse/direct {_f(s['ratio_gatehouse_over_direct'], '.3f')} "
          f"(per rep: {', '.join(_f(x, '.3f') for x in s['ratio_per_rep'])}); "
          f"errors {d['errors']}/{g['errors']}")
    for name, t in (("direct", d), ("gatehouse", g)):
        c = t["cpu_ms_per_msg"]
        print(f"  {name:<9} CPU ms/msg: gatehouse {_f(c['gatehouse'], '.3f')}, postfix {_f(c['postfix'], '.3f')}, "
              f"dovecot {_f(c['dovecot'], '.3f')}, load generator {_f(c['loadgen'], '.3f')}; "
              f"cycle p50 {t['cycle_ms_p50']:.2f} ms p99 {t['cycle_ms_p99']:.2f} ms; other load "
              f"{t['other_cores']:.2f} cores")
    print("  median step times, ms: " + "  ".join(f"{s_}" for s_ in STEPS))
    for name, t in (("direct", d), ("gatehouse", g)):
        print(f"    {name:<9} " + " ".join(f"{t['step_ms_p50'][s_]:6.2f}" for s_ in STEPS))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", help="the gatehouse binary (default $GATEHOUSE_BIN or build-bench/gatehouse)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per phase (default 10)")
    ap.add_argument("--max-messages", type=int, default=100000, help="messages per phase at most")
    ap.add_argument("--reps", type=int, default=2, help="direct+gatehouse pairs per concurrency (default 2)")
    ap.add_argument("--concurrency", default="1,16", help="comma-separated client counts (default 1,16)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per target before measuring")
    ap.add_argument("--workers", type=int, default=2, help="Gatehouse worker threads (default 2)")
    ap.add_argument("--results", default="/tmp/bench-submission/results.json")
    args = ap.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]

    binary = gatehouse_binary(args.bin)
    started, results, ports = [], [], []
    try:
        dovecot, postfix, gatehouse = start_servers(binary, args.workers, started)
        ports = [postfix.port, gatehouse.port("plain"), dovecot.imap_port, dovecot.pop3_port]
        targets = {"direct": postfix.port, "gatehouse": gatehouse.port("plain")}
        meter = CpuMeter(gatehouse, postfix, dovecot)
        loadavg_at_start = os.getloadavg()
        print(f"gatehouse {binary} (pid {gatehouse.proc.pid}, {args.workers} workers) on :{targets['gatehouse']}; "
              f"postfix master {postfix.pgid} on :{postfix.port}; dovecot {dovecot.proc.pid}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
        for concurrency in concurrencies:
            for target, port in targets.items():  # warm-up: smtpd processes forked, caches filled
                stats, _ = asyncio.run(run_load(port, concurrency, args.warmup, args.max_messages))
                if stats.errors and not stats.messages:
                    raise RuntimeError(f"warm-up against {target} failed: {stats.error_samples}")
            print(f"\n{HEADER}", flush=True)
            for rep in range(1, args.reps + 1):
                for target, port in targets.items():
                    r = phase(target, port, concurrency, args.duration, args.max_messages, meter, postfix)
                    r["rep"] = rep
                    results.append(r)
                    print_row(r, rep)
                    for sample in r["error_samples"]:
                        print(f"      error: {sample}", flush=True)
        summaries = {}
        for concurrency in concurrencies:
            summaries[str(concurrency)] = summarize(results, concurrency)
            print_summary(concurrency, summaries[str(concurrency)])
        accepted = sum(r["messages"] for r in results)
        in_maildir = delivered(dovecot, BOB)
        print(f"\ndelivered into bob's maildir: {in_maildir} (measured phases accepted {accepted}, plus warm-ups)")
        report = {
            "what": "SMTP submission cycles (connect..QUIT, AUTH PLAIN, one ~2 KB message) per second, "
                    "straight to Postfix vs through Gatehouse (XCLIENT), interleaved in one run",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "loadavg_at_start": loadavg_at_start},
            "source": source_revision(),
            "params": {"duration_s": args.duration, "reps": args.reps, "concurrency": concurrencies,
                       "max_messages": args.max_messages, "warmup_s": args.warmup, "workers": args.workers,
                       "binary": binary, "message_bytes": len(make_body()) + 150},
            "phases": results, "summary": summaries, "delivered_to_maildir": in_maildir,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        with open(args.results, "w") as f:
            json.dump(report, f, indent=2)
        print(f"results: {args.results}")
    except BaseException:
        for server in started:
            if isinstance(server, Gatehouse):
                print(f"--- gatehouse stderr (tail)\n{server.stderr_text()[-2000:]}", file=sys.stderr)
            elif isinstance(server, Postfix):
                print(f"--- postfix log (tail)\n{server.log_text()[-2000:]}", file=sys.stderr)
        raise
    finally:
        stop_servers(started)
        left = nothing_listening(ports)
        if left:
            print(f"WARNING: still listening on {left}", file=sys.stderr)
        elif ports:
            print("all servers stopped; nothing listening on their ports")


if __name__ == "__main__":
    main()
