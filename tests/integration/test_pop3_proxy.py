"""End to end: POP3 clients -> Gatehouse -> real Dovecot POP3 back-ends (issue 5, POP3 part).

Back-end A (127.0.0.41) holds alice (with a dot-stuffing message and a 2 MB message) and carol.
Gatehouse listens on three ephemeral POP3 ports: "pop3" (STLS, TLS required for auth), "pop3s" (implicit
TLS) and "plain" (no TLS, auth allowed: lets tests look at the dialogue without TLS in the way).
"""

import base64
import hashlib
import json
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import time
import unittest
import uuid

from harness import (IO_TIMEOUT, Dovecot, FakeBackend, Gatehouse, LineClient, ScriptedServer, client_tls_context,
                     closed_port, listener, make_message, plain_sasl, user)

ALICE_PW = "alice-pass"
CAROL_PW = "carol pass with spaces"  # PASS takes the rest of the line (RFC 1939)
GHOST_PW = "ghost-pass"              # known to Gatehouse, unknown to the back-end
WRONG_PW = "wrong-secret-5521"
PASSWORDS = [ALICE_PW, CAROL_PW, GHOST_PW, WRONG_PW, "imap-only-pass", "pw-down"]

TIMEOUTS = {"connect_ms": 2000, "greeting_ms": 8000, "preauth_idle_ms": 30000, "session_idle_ms": 120000,
            "shutdown_grace_ms": 2000}

LISTENERS = [listener("pop3", tls="starttls", require_tls_for_auth=True, protocol="pop3"),
             listener("pop3s", tls="implicit", protocol="pop3"),
             listener("plain", tls="none", require_tls_for_auth=False, protocol="pop3")]

# Lines that need dot-stuffing on the wire: a lone ".", "..", ". x" and a line starting with ".."
DOTS_BODY = ("First line.\r\n.\r\n..\r\n. leading dot and space\r\n..two dots\r\n.\r\n"
             "Last line, then an empty one.\r\n\r\n")


class Pop3Error(AssertionError):
    pass


class Pop3Client(LineClient):
    """A line-level POP3 client on a raw socket, with a read buffer, deadlines and STLS."""

    PROTOCOL = "POP3"

    def __init__(self, port, server_hostname="mail.example.test", **kwargs):
        super().__init__(port, server_hostname=server_hostname, **kwargs)

    def read_multiline(self, timeout=None):
        """The body of a multi-line response up to and including ".\r\n", raw as on the wire."""
        deadline = time.monotonic() + (timeout or self.timeout)
        scanned = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                end = 3
            else:
                i = self.buf.find(b"\r\n.\r\n", max(0, scanned - 4))
                end = i + 5 if i >= 0 else 0
            if end:
                raw = bytes(self.buf[:end])
                del self.buf[:end]
                return raw
            scanned = len(self.buf)
            self._fill(deadline)

    def command(self, text, timeout=None):
        """Sends one command, returns its status line."""
        self.send(text.encode("utf-8") + b"\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.read_line(timeout)

    def ok(self, text, timeout=None):
        line = self.command(text, timeout)
        if not line.startswith(b"+OK"):
            raise Pop3Error(f"{text!r} -> {line!r}")
        return line

    def multi(self, text, timeout=None):
        """A command with a multi-line answer: (status line, raw body including the terminator)."""
        status = self.ok(text, timeout)
        return status, self.read_multiline(timeout)

    def greeting(self):
        line = self.read_line()
        if not line.startswith(b"+OK"):
            raise Pop3Error(f"bad greeting {line!r}")
        return line

    def capa(self):
        _, body = self.multi("CAPA")
        return [l.decode() for l in unstuff(body).split(b"\r\n") if l]

    def stls(self, ctx=None):
        self.ok("STLS")
        self.upgrade_tls(ctx or client_tls_context(), "mail.example.test")

    def login(self, login, password):
        self.ok(f"USER {login}")
        return self.ok(f"PASS {password}")


def unstuff(raw):
    """A multi-line body as on the wire (with ".\r\n") -> its content (RFC 1939 section 3)."""
    assert raw.endswith(b".\r\n"), raw[-20:]
    lines = raw[:-3].split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


def assert_no_password(testcase, text):
    for pw in PASSWORDS:
        for form in {pw, json.dumps(pw)[1:-1]}:
            testcase.assertNotIn(form, text, f"a password ({pw!r}) appears in Gatehouse's log")


class FakePop3(ScriptedServer):
    """A scripted POP3 back-end on 127.0.0.1:0, each connection served by its own thread. It greets with
    "+OK [XCLIENT]" when `xclient` (as Dovecot does for a trusted proxy) and answers XCLIENT with +OK, CAPA
    with the lines in `capa` (default USER and RESP-CODES: no SASL, so Gatehouse falls back to USER/PASS),
    AUTH PLAIN only while "SASL PLAIN" is in `capa`, USER and PASS with +OK, and other commands from
    `answers` {keyword: raw bytes} (USER and PASS too, +OK by default). It closes right after answering a keyword in `close_after` (a back-end
    that dies). `sessions` holds each connection's commands in order (`commands`: all of them); a command
    is recorded before it is answered. With `xclient_answer` it answers XCLIENT with that line, and only once the
    next command has arrived: a proxy that waits for the answer before it sends more never gets one. A keyword in
    `unanswered` gets no answer: the back-end waits for the end of the connection and closes (it died)."""

    def __init__(self, answers=None, close_after=(), xclient=False, capa=("USER", "RESP-CODES"),
                 xclient_answer=None, unanswered=()):
        self.answers = answers or {}
        self.unanswered = set(unanswered)
        self.xclient_answer = xclient_answer
        self.close_after = set(close_after)
        self.xclient = xclient
        self.capa = list(capa)
        self.sessions = []
        super().__init__()

    @property
    def commands(self):
        return [c for session in self.sessions for c in session]

    def serve(self, conn):
        commands = []
        self.sessions.append(commands)
        self._dialogue(conn, commands)

    def _dialogue(self, conn, commands):
        conn.sendall(b"+OK [XCLIENT] fake ready\r\n" if self.xclient else b"+OK fake ready\r\n")
        held = None  # XCLIENT's answer, sent before the next command's
        for raw in conn.makefile("rb"):
            line = raw.rstrip(b"\r\n").decode()
            commands.append(line)
            keyword = line.split(" ")[0].upper()
            if keyword in self.unanswered:
                conn.makefile("rb").read()  # until Gatehouse passes on the client's end
                return
            if held is not None:
                conn.sendall(held)
                if not held.startswith(b"+OK"):
                    return  # a refusal: nothing after it is answered
                held = None
            if keyword == "XCLIENT" and self.xclient and self.xclient_answer is not None:
                held = self.xclient_answer
            elif keyword == "CAPA":
                conn.sendall(b"+OK\r\n" + "".join(c + "\r\n" for c in self.capa).encode() + b".\r\n")
            elif keyword == "XCLIENT" and self.xclient:
                conn.sendall(b"+OK\r\n")
            elif keyword == "AUTH":
                plain = "SASL PLAIN" in self.capa and line.upper().startswith("AUTH PLAIN ")
                conn.sendall(b"+OK Logged in.\r\n" if plain else b"-ERR Unsupported authentication mechanism.\r\n")
            elif keyword in ("USER", "PASS"):
                conn.sendall(self.answers.get(keyword, b"+OK\r\n"))
            else:
                conn.sendall(self.answers.get(keyword, b"-ERR unknown\r\n"))
            if keyword in self.close_after or keyword == "QUIT":
                return

    def backend_config(self, name):
        return {"name": name, "address": "127.0.0.1", "ports": {"pop3": self.port}, "tls": "none"}


class Pop3TestCase(unittest.TestCase):
    def new_gatehouse(self, backends, users, listeners=LISTENERS, timeouts=TIMEOUTS, **config):
        g = Gatehouse({"listeners": listeners, "backends": backends, "timeouts": dict(timeouts), **config},
                      users=users)
        self.addCleanup(g.cleanup)
        g.start()
        return g

    def connect(self, g, name="plain", tls=None, source_ip=None, greet=True, timeout=IO_TIMEOUT):
        if tls is None and name == "pop3s":
            tls = client_tls_context()
        c = Pop3Client(g.ports[name], tls=tls, source_ip=source_ip, timeout=timeout)
        self.addCleanup(c.close)
        if greet:
            c.greeting()
        return c


class Pop3ProxyTest(Pop3TestCase):
    @classmethod
    def setUpClass(cls):
        cls.A = Dovecot("A", "127.0.0.41", {"alice": ALICE_PW, "carol": CAROL_PW})
        cls.addClassCleanup(cls.A.stop)
        cls.dots = make_message(f"dots-{uuid.uuid4().hex[:8]}", body=DOTS_BODY)
        big_body = base64.encodebytes(os.urandom(1_500_000)).replace(b"\n", b"\r\n")
        cls.big = make_message("two megabytes", body="").rstrip(b"\r\n") + b"\r\n\r\n" + big_body
        assert len(cls.big) > 2_000_000
        cls.A.deliver("alice", cls.dots)
        cls.A.deliver("alice", cls.big)
        cls.A.start()
        cls.users = [user("alice", ALICE_PW, "A", protocols=["pop3"]),
                     user("carol", CAROL_PW, "A", protocols=["pop3"]),
                     user("ghost", GHOST_PW, "A", protocols=["pop3"]),
                     user("imaponly", "imap-only-pass", "A", backend_login="alice", protocols=["imap"])]
        cls.g = Gatehouse({"listeners": LISTENERS, "backends": [cls.A.backend_config()],
                           "timeouts": dict(TIMEOUTS)}, users=cls.users)
        cls.addClassCleanup(cls.g.cleanup)
        cls.addClassCleanup(cls._final_log_check)
        cls.g.start()
        cls.direct = cls._retr_direct()

    @classmethod
    def _final_log_check(cls):
        text = cls.g.stderr_text()
        for pw in PASSWORDS:
            if pw in text:
                raise AssertionError(f"password {pw!r} found in Gatehouse's log")
        cls.g.stop()

    @classmethod
    def _retr_direct(cls):
        """{message number: raw RETR body} straight from Dovecot: what the proxy must reproduce."""
        with Pop3Client(cls.A.pop3_port, host=cls.A.ip, timeout=60) as c:
            c.greeting()
            c.login("alice", ALICE_PW)
            _, listing = c.multi("LIST")
            numbers = [int(l.split()[0]) for l in unstuff(listing).split(b"\r\n") if l]
            bodies = {n: c.multi(f"RETR {n}", timeout=60)[1] for n in numbers}
            c.ok("QUIT")
        return bodies

    def retr_all(self, c):
        _, listing = c.multi("LIST")
        numbers = [int(l.split()[0]) for l in unstuff(listing).split(b"\r\n") if l]
        return {n: c.multi(f"RETR {n}", timeout=60)[1] for n in numbers}

    def check_mailbox(self, bodies):
        self.assertEqual(len(bodies), 2)
        for n, raw in bodies.items():
            self.assertEqual(hashlib.sha256(raw).hexdigest(), hashlib.sha256(self.direct[n]).hexdigest(),
                             f"message {n} differs from what Dovecot sends directly")
        self.assertEqual(sorted(unstuff(b) for b in bodies.values()), sorted([self.dots, self.big]))
        dots_raw = next(b for b in bodies.values() if len(b) < 10000)
        self.assertIn(b"\r\n..\r\n...\r\n.. leading dot and space\r\n...two dots\r\n..\r\n", dots_raw)

    # ---- login and RETR, byte-exact

    def test_retr_byte_exact_through_stls_listener(self):
        c = self.connect(self.g, "pop3", timeout=60)
        c.stls()
        self.assertEqual(c.login("alice", ALICE_PW), b"+OK Logged in.")
        self.check_mailbox(self.retr_all(c))
        self.assertTrue(c.ok("QUIT").startswith(b"+OK"))
        self.assertEqual(c.read_until_eof(), [])

    def test_retr_byte_exact_through_implicit_tls_listener(self):
        c = self.connect(self.g, "pop3s", timeout=60)
        c.ok("AUTH PLAIN " + plain_sasl("alice", ALICE_PW))
        self.check_mailbox(self.retr_all(c))
        _, top = c.multi("TOP 1 0")
        self.assertIn(b"Subject: ", unstuff(top))
        c.ok("QUIT")

    def test_password_with_spaces_and_backend_capabilities_after_login(self):
        c = self.connect(self.g)
        pre = c.capa()
        self.assertNotIn("TOP", pre)
        c.login("carol", CAROL_PW)
        post = c.capa()  # now the back-end's list, through the relay
        self.assertIn("TOP", post)
        self.assertIn("UIDL", post)
        self.assertEqual(c.ok("STAT"), b"+OK 0 0")

    # ---- real clients

    def test_poplib_stls(self):
        p = poplib.POP3("127.0.0.1", self.g.ports["pop3"], timeout=30)
        try:
            self.assertIn("STLS", p.capa())
            self.assertNotIn("USER", p.capa())
            p.stls(context=client_tls_context())
            caps = p.capa()
            self.assertIn("USER", caps)
            self.assertNotIn("STLS", caps)
            p.user("alice")
            p.pass_(ALICE_PW)
            count, _ = p.stat()
            self.assertEqual(count, 2)
            contents = sorted(b"\r\n".join(p.retr(n)[1]) + b"\r\n" for n in (1, 2))
            self.assertEqual(contents, sorted([self.dots, self.big]))
        finally:
            self.assertTrue(p.quit().startswith(b"+OK"))

    def test_poplib_implicit_tls(self):
        p = poplib.POP3_SSL("127.0.0.1", self.g.ports["pop3s"], context=client_tls_context(), timeout=30)
        try:
            p.user("alice")
            p.pass_(ALICE_PW)
            self.assertEqual(len(p.uidl()[1]), 2)
        finally:
            p.quit()

    def curl(self, url, *extra):
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        r = subprocess.run(["curl", "-sS", "-k", "--max-time", "30", "--url", url, "-u", f"alice:{ALICE_PW}",
                            *extra], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_curl_pop3s(self):
        port = self.g.ports["pop3s"]
        got = {self.curl(f"pop3s://127.0.0.1:{port}/{n}") for n in (1, 2)}
        self.assertEqual(got, {self.dots, self.big})
        self.assertEqual(len(self.curl(f"pop3s://127.0.0.1:{port}/").splitlines()), 2)

    def test_curl_pop3_stls(self):
        port = self.g.ports["pop3"]
        self.assertEqual(len(self.curl(f"pop3://127.0.0.1:{port}/", "--ssl-reqd").splitlines()), 2)

    # ---- refusals

    def test_bad_credentials_get_one_answer(self):
        cases = [("USER alice", f"PASS {WRONG_PW}"), ("USER nosuchuser", "PASS whatever"),
                 ("USER alice", "PASS"), ("AUTH PLAIN " + plain_sasl("alice", WRONG_PW), None),
                 ("AUTH PLAIN " + plain_sasl("nosuch", "x"), None), ("AUTH PLAIN " + plain_sasl("alice", ""), None)]
        answers = set()
        for first, second in cases:
            c = self.connect(self.g, source_ip="127.0.0.42")
            line = c.command(first)
            if second is not None:
                self.assertEqual(line, b"+OK")
                line = c.command(second)
            answers.add(line)
            c.ok("CAPA")  # the session goes on
            c.read_multiline()
            c.close()
        self.assertEqual(answers, {b"-ERR [AUTH] Authentication failed."})
        c = self.connect(self.g)
        c.ok("USER imaponly")
        self.assertEqual(c.command("PASS imap-only-pass"), b"-ERR [AUTH] POP3 access is disabled for this account.")

    def test_backend_refusal_is_auth_failure(self):
        since = self.A.log_size()
        c = self.connect(self.g, source_ip="127.0.0.43")
        c.ok("USER ghost")
        self.assertEqual(c.command(f"PASS {GHOST_PW}"), b"-ERR [AUTH] Authentication failed.")
        self.A.wait_log(r"ghost", since)  # it did reach the back-end, which refused it

    def test_too_many_auth_failures_end_the_session(self):
        c = self.connect(self.g, source_ip="127.0.0.44")
        for _ in range(2):
            self.assertEqual(c.command("AUTH PLAIN " + plain_sasl("x", "y")), b"-ERR [AUTH] Authentication failed.")
        # One answer per command (a pipelining client counts them): the last failure's is the goodbye.
        self.assertEqual(c.command("AUTH PLAIN " + plain_sasl("x", "y")),
                         b"-ERR [AUTH] Too many authentication failures.")
        self.assertEqual(c.read_until_eof(), [])

    def test_unknown_and_transaction_commands_are_refused_and_counted(self):
        c = self.connect(self.g)
        for cmd in ("NOOP", "STAT", "RETR 1", "FOO bar", "PASS x", ""):
            self.assertTrue(c.command(cmd).startswith(b"-ERR"), cmd)
        c.send(b"NOOP\r\n" * 5)
        lines = c.read_until_eof()
        # Ten bad commands, ten answers: the tenth is the goodbye; the fifth NOOP is never read.
        self.assertEqual(lines, [b"-ERR Unknown command."] * 3 + [b"-ERR Too many invalid commands."])

    def test_apop_is_refused_as_not_enabled_without_counting_as_invalid(self):
        c = self.connect(self.g)
        for _ in range(12):  # more than max_bad_commands
            self.assertEqual(c.command("APOP alice 0123456789abcdef"), b"-ERR APOP not enabled.")
        c.ok("CAPA")
        c.read_multiline()

    def test_user_takes_the_rest_of_the_line(self):
        c = self.connect(self.g, source_ip="127.0.0.47")
        c.ok("USER alice smith")  # a name with a space is the directory's to refuse, as in Dovecot
        self.assertEqual(c.command("PASS " + ALICE_PW), b"-ERR [AUTH] Authentication failed.")
        self.assertTrue(c.command("USER").startswith(b"-ERR"))

    def test_overlong_line_is_refused_and_session_goes_on(self):
        c = self.connect(self.g)
        self.assertEqual(c.command("USER " + "x" * 9000), b"-ERR Line too long.")
        c.ok("USER alice")
        c.ok(f"PASS {ALICE_PW}")

    # ---- dialogues

    def test_pipelined_preauth_commands_answered_in_order(self):
        c = self.connect(self.g)
        c.send(f"CAPA\r\nUSER alice\r\nPASS {ALICE_PW}\r\nSTAT\r\nLIST\r\nQUIT\r\n".encode())
        self.assertTrue(c.read_line().startswith(b"+OK"))
        capa = unstuff(c.read_multiline()).split(b"\r\n")
        self.assertIn(b"PIPELINING", capa)
        self.assertEqual(c.read_line(), b"+OK")
        self.assertEqual(c.read_line(), b"+OK Logged in.")
        self.assertTrue(re.match(rb"\+OK 2 \d+$", c.read_line()))
        self.assertTrue(c.read_line().startswith(b"+OK"))
        self.assertEqual(len([l for l in unstuff(c.read_multiline()).split(b"\r\n") if l]), 2)
        self.assertTrue(c.read_line().startswith(b"+OK"))
        self.assertEqual(c.read_until_eof(), [])

    def test_auth_dialogues(self):
        c = self.connect(self.g)
        c.ok("AUTH")
        self.assertEqual(unstuff(c.read_multiline()), b"PLAIN\r\nLOGIN\r\n")
        # PLAIN needs two NULs: an empty message is a failed login, as in Dovecot.
        self.assertEqual(c.command("AUTH PLAIN ="), b"-ERR [AUTH] Authentication failed.")
        self.assertEqual(c.command("AUTH PLAIN"), b"+ ")
        self.assertEqual(c.command("*"), b"-ERR Authentication aborted by client.")
        self.assertEqual(c.command("AUTH CRAM-MD5"), b"-ERR Unsupported authentication mechanism.")
        self.assertEqual(c.command("AUTH LOGIN"), b"+ VXNlcm5hbWU6")
        self.assertEqual(c.command(base64.b64encode(b"alice").decode()), b"+ UGFzc3dvcmQ6")
        self.assertEqual(c.command(base64.b64encode(ALICE_PW.encode()).decode()), b"+OK Logged in.")
        c.ok("STAT")
        c2 = self.connect(self.g)
        self.assertEqual(c2.command("auth plain"), b"+ ")
        self.assertEqual(c2.command(plain_sasl("alice", ALICE_PW)), b"+OK Logged in.")
        c3 = self.connect(self.g)
        self.assertEqual(c3.command("AUTH PLAIN"), b"+ ")
        self.assertEqual(c3.command("not base64!"), b"-ERR Invalid SASL response.")
        c3.ok("CAPA")

    def test_quit_before_login(self):
        c = self.connect(self.g)
        self.assertEqual(c.command("QUIT"), b"+OK Logging out.")
        self.assertEqual(c.read_until_eof(), [])

    def test_greeting(self):
        c = self.connect(self.g, greet=False)
        self.assertEqual(c.read_line(), b"+OK mail.example.test POP3 proxy ready.")

    # ---- TLS

    def test_stls_command_injection_is_discarded(self):
        c = self.connect(self.g, "pop3")
        c.send(b"STLS\r\nCAPA\r\n")
        self.assertTrue(c.read_line().startswith(b"+OK"))
        self.assertEqual(bytes(c.buf), b"", "plaintext answer after the STLS +OK")
        c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="mail.example.test")
        c.send(b"NOOP\r\nCAPA\r\n")
        self.assertEqual(c.read_line(), b"-ERR Unknown command.")  # NOOP's: no CAPA answer came first
        self.assertTrue(c.read_line().startswith(b"+OK"))
        caps = unstuff(c.read_multiline()).split(b"\r\n")
        self.assertIn(b"USER", caps)
        self.assertNotIn(b"STLS", caps)
        # Nothing else was queued: the next answer is QUIT's.
        self.assertEqual(c.command("QUIT"), b"+OK Logging out.")
        self.assertEqual(c.read_until_eof(), [])

    def test_plaintext_auth_refused_before_stls(self):
        since = self.A.log_size()
        c = self.connect(self.g, "pop3", source_ip="127.0.0.48")
        caps = c.capa()
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        self.assertFalse(any(x.startswith("SASL") for x in caps), caps)
        refusal = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
        self.assertEqual(c.command("USER alice"), refusal)
        self.assertEqual(c.command("AUTH PLAIN " + plain_sasl("alice", ALICE_PW)), refusal)
        self.assertEqual(c.command("AUTH"), refusal)
        c.stls()
        caps = c.capa()
        self.assertIn("USER", caps)
        self.assertIn("SASL PLAIN LOGIN", caps)
        self.assertNotIn("STLS", caps)
        self.assertTrue(c.command("STLS").startswith(b"-ERR"))
        c.login("alice", ALICE_PW)
        # One login from this client (another test's may reach the log late: hence its address).
        ours = r"Login: user=<alice>, [^\n]*rip=127\.0\.0\.48, "
        self.A.wait_log(ours, since)
        self.assertEqual(len(re.findall(ours, self.A.log_text(since))), 1)

    def test_alpn_is_strict_on_pop3s(self):
        port = self.g.ports["pop3s"]
        with self.assertRaises(ssl.SSLError) as cm:
            Pop3Client(port, tls=client_tls_context(alpn=["http/1.1"])).close()
        self.assertRegex(str(cm.exception), r"(?i)no.application.protocol")
        for alpn, expected in ((["pop3"], "pop3"), (None, None), (["http/1.1", "pop3"], "pop3")):
            with Pop3Client(port, tls=client_tls_context(alpn=alpn)) as c:
                self.assertEqual(c.sock.selected_alpn_protocol(), expected)
                c.greeting()
                c.ok("CAPA")

    def test_alpn_is_strict_after_stls(self):
        c = self.connect(self.g, "pop3")
        with self.assertRaises(ssl.SSLError):
            c.stls(client_tls_context(alpn=["http/1.1"]))
        c2 = self.connect(self.g, "pop3")
        c2.stls(client_tls_context(alpn=["pop3"]))
        self.assertEqual(c2.sock.selected_alpn_protocol(), "pop3")

    # ---- the back-end sees the real client; logs

    def test_backend_sees_the_real_client_address(self):
        since = self.A.log_size()
        c = self.connect(self.g, source_ip="127.0.0.45")
        c.login("alice", ALICE_PW)
        m = self.A.wait_log(r"pop3-login: Info: Login: user=<alice>, [^\n]*rip=127\.0\.0\.45, [^\n]*", since)
        c.ok("QUIT")
        c.read_until_eof()
        end = self.g.wait_log(lambda l: l.get("msg") == "session end" and "127.0.0.45" in str(l.get("client")),
                              what="session end for 127.0.0.45")
        self.assertIn(f"session=<{end['session']}>", m.group(0))

    def test_session_log_line(self):
        c = self.connect(self.g, "pop3s", source_ip="127.0.0.46")
        c.login("alice", ALICE_PW)
        c.ok("STAT")
        c.ok("QUIT")
        c.read_until_eof()
        end = self.g.wait_log(lambda l: l.get("msg") == "session end" and "127.0.0.46" in str(l.get("client")),
                              what="session end for 127.0.0.46")
        self.assertEqual(end.get("protocol"), "pop3", end)
        self.assertEqual(end.get("user"), "alice", end)
        self.assertEqual(end.get("backend"), "A", end)
        self.assertEqual(end.get("outcome"), "logout", end)
        self.assertTrue(end.get("tls"), end)
        self.assertGreater(end.get("bytes_in", 0), 0, end)
        self.assertGreater(end.get("bytes_out", 0), 0, end)
        assert_no_password(self, self.g.stderr_text())


class Pop3BackendTlsTest(Pop3TestCase):
    """Gatehouse -> Dovecot over STLS and over implicit TLS, verified against the back-end's certificate."""

    def test_stls_and_implicit_tls_to_the_backend(self):
        d = Dovecot("S", "127.0.0.50", {"gina": "gina-pass"}, ssl=True)
        self.addCleanup(d.stop)
        d.deliver("gina", make_message("over tls"))
        d.start()
        g = self.new_gatehouse([d.backend_config("S1", tls="starttls"), d.backend_config("S2", tls="implicit")],
                               [user("gina", "gina-pass", "S1", protocols=["pop3"]),
                                user("gina2", "gina-pass", "S2", backend_login="gina", protocols=["pop3"])])
        # Twice each: the second login to a back-end is sent behind XCLIENT from the remembered CAPA.
        for login, source in (("gina", "127.0.0.53"), ("gina2", "127.0.0.54")) * 2:
            since = d.log_size()
            c = self.connect(g, source_ip=source)
            c.login(login, "gina-pass")
            self.assertIn(b"Subject: over tls", unstuff(c.multi("RETR 1")[1]))
            c.ok("QUIT")
            # The forwarded address (XCLIENT inside TLS) and TLS on the back-end connection.
            d.wait_log(r"Login: user=<gina>, [^\n]*rip=" + re.escape(source) + r", [^\n]*TLS", since)


class Pop3BackendFailureTest(Pop3TestCase):
    """Back-ends that are down, never greet, hold the mailbox locked, or die mid-session."""

    def fay_logged_in(self, fake):
        """A client logged in as fay, whose home back-end is `fake`."""
        self.addCleanup(fake.stop)
        g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F", protocols=["pop3"])])
        c = self.connect(g)
        c.login("fay", "fay-pass")
        return c

    def test_backend_permanent_failure_and_login_delay_are_passed_on(self):
        # RFC 3206: a client must not simply retry [SYS/PERM]; RFC 2449: [LOGIN-DELAY] says wait. Both
        # used to reach the client as [SYS/TEMP] (found by a review).
        for code in (b"SYS/PERM", b"LOGIN-DELAY"):
            with self.subTest(code=code):
                fake = FakePop3({"PASS": b"-ERR [" + code + b"] the back-end's own words\r\n"})
                self.addCleanup(fake.stop)
                g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F", protocols=["pop3"])])
                c = self.connect(g)
                c.ok("USER fay")
                line = c.command("PASS fay-pass")
                self.assertTrue(line.startswith(b"-ERR [" + code + b"] "), line)
                self.assertNotIn(b"own words", line)
                c.ok("CAPA")  # the session goes on, as after any refused login

    def test_backend_down_gives_sys_temp_quickly(self):
        down = {"name": "down", "address": "127.0.0.1", "ports": {"pop3": closed_port()}, "tls": "none"}
        g = self.new_gatehouse([down], [user("u-down", "pw-down", "down", protocols=["pop3"])])
        c = self.connect(g)
        c.ok("USER u-down")
        t0 = time.monotonic()
        line = c.command("PASS pw-down")
        self.assertTrue(line.startswith(b"-ERR [SYS/TEMP]"), line)
        self.assertLess(time.monotonic() - t0, 3.0)
        c.ok("CAPA")  # a temporary failure does not end the session

    def test_backend_that_never_greets_gives_sys_temp(self):
        silent = FakeBackend("silent")
        self.addCleanup(silent.stop)
        g = self.new_gatehouse([silent.backend_config("silent")],
                               [user("u-silent", "pw-silent", "silent", protocols=["pop3"])],
                               timeouts=dict(TIMEOUTS, greeting_ms=1000))
        c = self.connect(g)
        line = c.command("AUTH PLAIN " + plain_sasl("u-silent", "pw-silent"), timeout=10)
        self.assertTrue(line.startswith(b"-ERR [SYS/TEMP]"), line)

    def test_backend_that_is_not_pop3_gives_sys_temp(self):
        closer = FakeBackend("greet_close")  # an IMAP greeting, then close
        self.addCleanup(closer.stop)
        g = self.new_gatehouse([closer.backend_config("closer")],
                               [user("u-closer", "pw-closer", "closer", protocols=["pop3"])])
        c = self.connect(g)
        line = c.command("AUTH PLAIN " + plain_sasl("u-closer", "pw-closer"))
        self.assertTrue(line.startswith(b"-ERR [SYS/TEMP]"), line)

    def test_in_use_is_passed_on(self):
        d = Dovecot("L", "127.0.0.47", {"dave": "dave-pass"}, extra_conf="pop3_lock_session = yes\n")
        self.addCleanup(d.stop)
        d.start()
        # Dovecot waits about 10 s for the lock before it answers [IN-USE]: the login step may take that long.
        g = self.new_gatehouse([d.backend_config()], [user("dave", "dave-pass", "L", protocols=["pop3"])],
                               timeouts=dict(TIMEOUTS, greeting_ms=20000))
        first = self.connect(g)
        first.login("dave", "dave-pass")
        first.ok("STAT")
        second = self.connect(g)
        second.ok("USER dave")
        line = second.command("PASS dave-pass", timeout=30)
        self.assertTrue(line.startswith(b"-ERR [IN-USE]"), line)

    def test_backend_killed_between_commands_gives_sys_temp(self):
        d = Dovecot("K", "127.0.0.48", {"erin": "erin-pass"})
        self.addCleanup(d.stop)
        d.deliver("erin", make_message("hello erin"))
        d.start()
        g = self.new_gatehouse([d.backend_config()], [user("erin", "erin-pass", "K", protocols=["pop3"])])
        c = self.connect(g)
        c.login("erin", "erin-pass")
        c.multi("RETR 1")
        c.ok("STAT")
        d.kill()
        lines = c.read_until_eof()
        self.assertEqual(lines, [b"-ERR [SYS/TEMP] Connection to the mailbox server lost."])

    def test_backend_lost_inside_a_multiline_answer_closes_without_injecting(self):
        fake = FakePop3({"STAT": b"+OK 1 100\r\n", "RETR": b"+OK 100 octets\r\nSubject: cut\r\n"},
                        close_after=["RETR"])
        c = self.fay_logged_in(fake)
        self.assertEqual(fake.commands[-2:], ["USER fay", "PASS fay-pass"])  # no SASL PLAIN: USER/PASS
        c.ok("STAT")
        c.send(b"RETR 1\r\n")
        self.assertEqual(c.read_until_eof(), [b"+OK 100 octets", b"Subject: cut"])  # nothing appended

    def test_backend_lost_after_the_client_half_closed(self):
        """A client that sends RETR, ends its side and waits for the message: the back-end dies
        without answering, so the client is told, not left with a bare close."""
        fake = FakePop3({"STAT": b"+OK 1 100\r\n"}, unanswered=["RETR"])
        c = self.fay_logged_in(fake)
        c.send(b"STAT\r\nRETR 1\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.read_until_eof(), [b"+OK 1 100", b"-ERR [SYS/TEMP] Connection to the mailbox server lost."])

    def test_client_half_close_with_everything_answered_gets_no_goodbye(self):
        fake = FakePop3({"STAT": b"+OK 1 100\r\n"})
        c = self.fay_logged_in(fake)
        c.send(b"STAT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.read_until_eof(), [b"+OK 1 100"])

    def test_backend_capabilities_are_asked_once_then_capa_is_skipped(self):
        fake = FakePop3({"STAT": b"+OK 0 0\r\n", "QUIT": b"+OK bye\r\n"}, xclient=True,
                        capa=["USER", "SASL PLAIN", "PIPELINING", "AUTH-RESP-CODE"])
        self.addCleanup(fake.stop)
        g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F", protocols=["pop3"])])
        auth = "AUTH PLAIN " + plain_sasl("fay", "fay-pass")
        for _ in range(3):
            c = self.connect(g)
            c.login("fay", "fay-pass")
            c.ok("STAT")
            c.ok("QUIT")
            c.read_until_eof()
        keywords = [[cmd.split(" ")[0] for cmd in s] for s in fake.sessions]
        # The first login learns what the back-end offers; the others go straight from XCLIENT to AUTH.
        self.assertEqual(keywords[0], ["XCLIENT", "CAPA", "AUTH", "STAT", "QUIT"])
        self.assertEqual(keywords[1:], [["XCLIENT", "AUTH", "STAT", "QUIT"]] * 2)
        for session in fake.sessions:
            self.assertEqual([cmd for cmd in session if cmd.startswith("AUTH")], [auth])

    def test_remembered_login_is_pipelined_behind_xclient(self):
        # This back-end answers XCLIENT only once the next command is in: a login that waited for
        # that answer would hang until the greeting timeout.
        fake = FakePop3({"STAT": b"+OK 0 0\r\n"}, xclient=True, xclient_answer=b"+OK\r\n",
                        capa=["USER", "SASL PLAIN", "AUTH-RESP-CODE"])
        self.addCleanup(fake.stop)
        g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F", protocols=["pop3"])],
                               timeouts={**TIMEOUTS, "greeting_ms": 60000})
        for _ in range(3):
            c = self.connect(g)
            c.login("fay", "fay-pass")
            self.assertEqual(c.ok("STAT"), b"+OK 0 0")
        self.assertEqual([[cmd.split(" ")[0] for cmd in s] for s in fake.sessions],
                         [["XCLIENT", "CAPA", "AUTH", "STAT"]] + [["XCLIENT", "AUTH", "STAT"]] * 2)

    def test_xclient_refused_with_the_login_pipelined_is_a_temporary_failure(self):
        fake = FakePop3({}, xclient=True, capa=["USER", "SASL PLAIN", "AUTH-RESP-CODE"])
        self.addCleanup(fake.stop)
        g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F", protocols=["pop3"])])
        self.connect(g).login("fay", "fay-pass")  # learns the capabilities
        fake.xclient_answer = b"-ERR XCLIENT not allowed\r\n"
        c = self.connect(g)
        c.ok("USER fay")
        line = c.command("PASS fay-pass")
        self.assertTrue(line.startswith(b"-ERR [SYS/TEMP]"), line)
        self.assertEqual([cmd.split(" ")[0] for cmd in fake.sessions[-1]], ["XCLIENT", "AUTH"])
        g.wait_log(lambda e: e.get("msg") == "back-end login failed" and e.get("reason") == "back-end refused XCLIENT")

    def test_capabilities_of_a_backend_without_auth_resp_code_are_asked_every_time(self):
        # Without RFC 3206 codes a refusal cannot say whether the login we chose was wrong for the
        # back-end or the password was: such a back-end is always asked first.
        fake = FakePop3({}, xclient=True, capa=["USER", "SASL PLAIN", "PIPELINING"])
        self.addCleanup(fake.stop)
        g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F", protocols=["pop3"])])
        for _ in range(2):
            self.connect(g).login("fay", "fay-pass")
        self.assertEqual([[cmd.split(" ")[0] for cmd in s] for s in fake.sessions], [["XCLIENT", "CAPA", "AUTH"]] * 2)

    def test_stale_capabilities_cost_one_temporary_failure_then_are_asked_again(self):
        fake = FakePop3({"STAT": b"+OK 0 0\r\n"}, xclient=True,
                        capa=["USER", "SASL PLAIN", "PIPELINING", "AUTH-RESP-CODE"])
        self.addCleanup(fake.stop)
        g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F", protocols=["pop3"])])
        self.connect(g).login("fay", "fay-pass")
        fake.capa = ["USER", "PIPELINING", "AUTH-RESP-CODE"]  # reconfigured: no more SASL PLAIN
        c = self.connect(g)
        c.ok("USER fay")
        line = c.command("PASS fay-pass")
        self.assertTrue(line.startswith(b"-ERR [SYS/TEMP]"), line)  # not a wrong password
        c.login("fay", "fay-pass")  # the same session tries again: CAPA, then USER/PASS
        c.ok("STAT")
        self.assertEqual([cmd.split(" ")[0] for cmd in fake.sessions[-1]], ["XCLIENT", "CAPA", "USER", "PASS", "STAT"])

    def test_sigterm_with_a_relayed_session(self):
        d = Dovecot("T", "127.0.0.49", {"finn": "finn-pass"})
        self.addCleanup(d.stop)
        d.start()
        g = self.new_gatehouse([d.backend_config()], [user("finn", "finn-pass", "T", protocols=["pop3"])])
        c = self.connect(g)
        c.login("finn", "finn-pass")
        c.ok("STAT")
        g.terminate()
        grace = TIMEOUTS["shutdown_grace_ms"] / 1000.0
        lines = c.read_until_eof(grace + 5)
        self.assertEqual(lines, [b"-ERR [SYS/TEMP] Server shutting down."])
        self.assertEqual(g.wait_exit(grace + 5), 0, g.stderr_text()[-2000:])


if __name__ == "__main__":
    unittest.main()
