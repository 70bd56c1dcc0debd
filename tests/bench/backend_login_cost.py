#!/usr/bin/env python3
"""What a proxy's login dialogue costs the Dovecot back-end, in Dovecot CPU per login.

Runs sequential login cycles straight against the rig's back-end A (../shared/bench, env-up.sh first)
in the variants a proxy can choose between, and sums the CPU of Dovecot A's whole process tree
(utime+stime of live processes plus cutime+cstime of their reaped children) before and after:
  IMAP: LOGIN with and without a preceding ID (x-originating-ip, ...), then SELECT INBOX, LOGOUT
  POP3: USER/PASS or AUTH PLAIN, each with and without XCLIENT+CAPA, then STAT, RETR 1, QUIT
Variants are interleaved and repeated; compare them within one run only.
  backend_login_cost.py [--cycles 400] [--reps 2]
"""
import argparse
import base64
import socket

from proc_cpu import tree_cpu_seconds

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--cycles", type=int, default=400)
ap.add_argument("--reps", type=int, default=2)
a = ap.parse_args()
HOST, IMAP, POP3 = "127.0.1.1", 20143, 20110  # back-end A: even users


def connect(port):
    s = socket.create_connection((HOST, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")


def read_until(f, prefix):
    while True:
        line = f.readline()
        if not line or line.startswith(prefix):
            return line


def imap_cycle(i, with_id):
    s, f = connect(IMAP)
    f.readline()
    cmd = b""
    if with_id:
        cmd += (b'I ID ("x-originating-ip" "127.0.0.9" "x-originating-port" "5555" "x-connected-ip" '
                b'"127.0.0.1" "x-connected-port" "20443" "x-session-id" "0000000000000abc")\r\n')
    cmd += f'L LOGIN "user{i:04d}" "pass-{i:04d}"\r\n'.encode()
    s.sendall(cmd)
    assert read_until(f, b"L ").startswith(b"L OK")
    s.sendall(b"S SELECT INBOX\r\nO LOGOUT\r\n")
    read_until(f, b"O ")
    s.close()


def pop3_cycle(i, xclient, auth_plain):
    s, f = connect(POP3)
    f.readline()
    if xclient:
        s.sendall(b"XCLIENT ADDR=127.0.0.9 PORT=5555 SESSION=abc TTL=4\r\nCAPA\r\n")
        f.readline()
        read_until(f, b".")
    if auth_plain:
        s.sendall(b"AUTH PLAIN " + base64.b64encode(f"\0user{i:04d}\0pass-{i:04d}".encode()) + b"\r\n")
        assert f.readline().startswith(b"+OK")
    else:
        s.sendall(f"USER user{i:04d}\r\nPASS pass-{i:04d}\r\n".encode())
        f.readline()
        assert f.readline().startswith(b"+OK")
    s.sendall(b"STAT\r\nRETR 1\r\nQUIT\r\n")
    f.readline()
    f.readline()
    read_until(f, b".")
    f.readline()
    s.close()


VARIANTS = {
    "imap LOGIN": lambda i: imap_cycle(i, False),
    "imap ID + LOGIN": lambda i: imap_cycle(i, True),
    "pop3 USER/PASS": lambda i: pop3_cycle(i, False, False),
    "pop3 XCLIENT+CAPA + USER/PASS": lambda i: pop3_cycle(i, True, False),
    "pop3 AUTH PLAIN": lambda i: pop3_cycle(i, False, True),
    "pop3 XCLIENT+CAPA + AUTH PLAIN": lambda i: pop3_cycle(i, True, True),
}
root = int(open("/tmp/bench-dovA/run/master.pid").read().split()[0])
for rep in range(a.reps):
    for name, cycle in VARIANTS.items():
        before = tree_cpu_seconds([root])
        for k in range(a.cycles):
            cycle((2 * k) % 1000)
        per = (tree_cpu_seconds([root]) - before) / a.cycles * 1000
        print(f"rep {rep + 1}  {name:32s} {per:6.3f} ms Dovecot CPU per cycle", flush=True)
