#!/usr/bin/env python3
"""The local demo site that deploy/demo.sh runs, built from the integration-test harness.

Two Dovecot back-ends with sample mail (A on 127.0.0.11 holds alice, B on 127.0.0.12 holds bob, both on
ports 143/110) and Gatehouse on 127.0.0.1:10143 (IMAP, STARTTLS required before login) and 127.0.0.1:10993
(IMAPS). Gatehouse's log is shown on stdout; SIGINT/SIGTERM stops everything that was started, by pid.
State (configs, mail, certificate, logs, pids.json) lives in --state and is rebuilt at every start.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Dovecot, Gatehouse, listener, make_message  # noqa: E402
from postfix import Postfix  # noqa: E402
from slapd import ADMIN_PW, Slapd, person  # noqa: E402

IMAP_PORT, IMAPS_PORT, LDAP_PORT = 10143, 10993, 10389
POP3_PORT, POP3S_PORT = 10110, 10995
SUBMISSION_PORT, SUBMISSIONS_PORT = 10587, 10465
USERS = {"alice": ("alice-pass", "A"), "bob": ("bob-pass", "B")}
# The directory decides where a mailbox lives: alice's mailHost is back-end A's address, bob's is
# back-end B's name (both forms are accepted; anything not configured is refused).
MAIL_HOSTS = {"alice": "127.0.0.11", "bob": "B"}


def stop_leftovers(state):
    """Stops what a previous demo run (killed without clean-up) left running, by the pids it recorded."""
    path = os.path.join(state, "pids.json")
    try:
        with open(path) as f:
            pids = json.load(f)
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state not in cmdline:  # the pid was reused by something that is not ours
            continue
        print(f"demo: stopping leftover pid {pid} ({cmdline.strip()})", flush=True)
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        try:
            harness.wait_for(lambda: not harness._group_alive(pid), 10, f"leftover {pid} to exit")
        except TimeoutError:
            os.killpg(pid, signal.SIGKILL)
    os.unlink(path)


def sample_mail(dovecot, login, count):
    for i in range(1, count + 1):
        dovecot.deliver(login, make_message(f"Demo message {i} for {login}",
                                            body=f"Hello {login},\r\n\r\nthis is message {i}, stored on back-end "
                                                 f"{dovecot.name} ({dovecot.ip}).\r\n",
                                            to=f"{login}@example.test"))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="the gatehouse binary")
    ap.add_argument("--state", default="/tmp/gatehouse-demo")
    args = ap.parse_args()
    state = os.path.abspath(args.state)
    os.makedirs(state, exist_ok=True)
    stop_leftovers(state)
    Postfix.stop_leftover(os.path.join(state, "postfix"))
    for sub in ("dovecot-A", "dovecot-B", "gatehouse", "slapd", "postfix"):
        shutil.rmtree(os.path.join(state, sub), ignore_errors=True)

    started = []

    def record_pids():
        with open(os.path.join(state, "pids.json"), "w") as f:
            json.dump([p.proc.pid for p in started if p.proc is not None], f)

    def stop_all():
        for p in reversed(started):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                print(f"demo: stopping {type(p).__name__}: {e}", file=sys.stderr, flush=True)
        try:
            os.unlink(os.path.join(state, "pids.json"))
        except OSError:
            pass

    try:
        backends, dovecots = [], {}
        for name, ip in (("A", "127.0.0.11"), ("B", "127.0.0.12")):
            users = {login: pw for login, (pw, home) in USERS.items() if home == name}
            d = Dovecot(name, ip, users, markers=[f"on-{name}"], root=os.path.join(state, f"dovecot-{name}"),
                        imap_port=143, pop3_port=110, extra_conf=Postfix.dovecot_auth_conf())
            for login in users:
                sample_mail(d, login, 3)
            started.append(d)
            try:
                d.start()
            except RuntimeError as e:
                if "Address already in use" in str(e):
                    sys.exit(f"demo: {ip}:143 or :110 is taken (a system Dovecot listening on all addresses? "
                             f"stop it: systemctl stop dovecot)\n{e}")
                raise
            record_pids()
            backends.append(d.backend_config())
            dovecots[name] = d
        # Postfix takes every submission (XCLIENT from Gatehouse) and delivers into the Dovecot maildirs.
        postfix = Postfix(ip="127.0.0.13", port=587, root=os.path.join(state, "postfix"),
                          mailboxes={f"{login}@example.com": dovecots[home].maildir(login)
                                     for login, (_, home) in USERS.items()},
                          sasl_path=os.path.join(dovecots["A"].root, "run", "auth-postfix"))
        started.append(postfix)
        postfix.start()
        backends.append(postfix.backend_config("smtp"))
        slapd = Slapd([person(login, pw, MAIL_HOSTS[login]) for login, (pw, _) in USERS.items()],
                      port=LDAP_PORT, root=os.path.join(state, "slapd"))
        started.append(slapd)
        slapd.start()
        record_pids()
        config = {
            "workers": 0,
            "hostname": "mail.example.test",
            "log": {"level": "info"},
            "listeners": [listener("imap", tls="starttls", require_tls_for_auth=True, port=IMAP_PORT),
                          listener("imaps", tls="implicit", port=IMAPS_PORT),
                          listener("pop3", tls="starttls", require_tls_for_auth=True, protocol="pop3",
                                   port=POP3_PORT),
                          listener("pop3s", tls="implicit", protocol="pop3", port=POP3S_PORT),
                          listener("submission", tls="starttls", require_tls_for_auth=True,
                                   protocol="submission", port=SUBMISSION_PORT),
                          listener("submissions", tls="implicit", protocol="submission",
                                   port=SUBMISSIONS_PORT)],
            "submission": {"relay_backends": ["smtp"]},
            "backends": backends,
            "directory": {"type": "ldap",
                          "ldap": slapd.ldap_config()},
        }
        # The failed-login delay stays Gatehouse's default (2 s), as on a real site.
        g = Gatehouse(config, root=os.path.join(state, "gatehouse"), binary=os.path.abspath(args.bin), workers=0,
                      auth_failure_delay_ms=None)
        started.append(g)
        g.start()
        record_pids()
    except BaseException:
        stop_all()
        raise

    print(f"""
Gatehouse demo is running (state in {state}; Ctrl-C stops everything).

  IMAP + STARTTLS : 127.0.0.1:{IMAP_PORT}  (login only after STARTTLS)
  IMAPS           : 127.0.0.1:{IMAPS_PORT}
  POP3 + STLS     : 127.0.0.1:{POP3_PORT}  (login only after STLS)
  POP3S           : 127.0.0.1:{POP3S_PORT}
  SMTP submission : 127.0.0.1:{SUBMISSION_PORT} (STARTTLS) and :{SUBMISSIONS_PORT} (TLS), via Postfix on
                    127.0.0.13:587 into the Dovecot maildirs (alice@example.com, bob@example.com)
  users           : alice / alice-pass  (home: back-end A, 127.0.0.11)
                    bob   / bob-pass    (home: back-end B, 127.0.0.12)
  directory       : slapd on {slapd.uri} (base dc=example,dc=com); move a mailbox with
                    ldapmodify -x -H {slapd.uri} -D cn=admin,dc=example,dc=com -w {ADMIN_PW}
                    (change mailHost of uid=alice,ou=people,dc=example,dc=com to B)
  certificate     : {g.cert} (self-signed, mail.example.test)

Try:
  curl -k --ssl-reqd --url 'imap://127.0.0.1:{IMAP_PORT}/INBOX;UID=1' -u alice:alice-pass
  curl -k --url 'imaps://127.0.0.1:{IMAPS_PORT}/' -u bob:bob-pass        # lists bob's folders: on-B
  openssl s_client -quiet -connect 127.0.0.1:{IMAPS_PORT} -servername mail.example.test
      then type:  a LOGIN alice alice-pass   /   b LIST "" "*"   /   c LOGOUT
  openssl s_client -quiet -starttls imap -connect 127.0.0.1:{IMAP_PORT}
  curl -k --url 'pop3s://127.0.0.1:{POP3S_PORT}/1' -u alice:alice-pass   # alice's first message, by POP3
  curl -k --ssl-reqd --url 'pop3://127.0.0.1:{POP3_PORT}/' -u bob:bob-pass
  swaks --server 127.0.0.1:{SUBMISSION_PORT} --tls --auth PLAIN --auth-user alice --auth-password alice-pass
        --from alice@example.com --to bob@example.com     # (one line) then read it as bob by IMAP or POP3

Gatehouse log:
""", flush=True)

    # Forward Gatehouse's log to stdout until a signal arrives or Gatehouse exits. Signals are blocked only
    # now, after every child was started (a child inherits the signal mask).
    signals = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    offset = 0
    reason = None
    try:
        while reason is None:
            with open(g.stderr_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
            if not g.running():
                reason = f"gatehouse exited with {g.proc.returncode}"
                break
            info = signal.sigtimedwait(signals, 0.2)
            if info is not None:
                reason = f"signal {signal.Signals(info.si_signo).name}"
    finally:
        print(f"\ndemo: stopping ({reason or 'error'})", flush=True)
        stop_all()
        with open(g.stderr_path, "rb") as f:
            f.seek(offset)
            sys.stdout.write(f.read().decode("utf-8", "replace"))
        print("demo: stopped", flush=True)
    return 0 if reason and reason.startswith("signal") else 1


if __name__ == "__main__":
    sys.exit(main())
