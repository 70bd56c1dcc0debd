"""End to end: IMAP clients -> Gatehouse -> real Dovecot back-ends (issue 3).

Back-end A (127.0.0.11) holds alice and the users with awkward passwords, back-end B (127.0.0.12) holds bob;
every user has a marker mailbox "on-A" / "on-B" so a test can see through the proxy where it landed.
Gatehouse listens on three ephemeral ports: "imap" (STARTTLS, TLS required for auth), "imaps" (implicit
TLS) and "plain" (no TLS, auth allowed: lets tests look at the IMAP dialogue without TLS in the way).
"""

import base64
import hashlib
import imaplib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import uuid

import harness
from harness import (IO_TIMEOUT, Dovecot, FakeBackend, FakeImap, GatedForwarder, Gatehouse, ImapClient, Literal, client_tls_context,
                     closed_port, listener, make_message, plain_sasl, unread_bytes, untagged_capabilities, user,
                     wait_for)

ALICE_PW = "alice-pass"
BOB_PW = "bob-pass"
WEIRD_PW = 'pä"ss\\wörd€ {3}'       # 8-bit UTF-8, a quote, a backslash and something that looks like a literal
QUOTED_PW = 'q"uo\\te d%*'           # 7-bit with what a quoted string must escape
GHOST_PW = "ghost-pass"              # known to Gatehouse, unknown to the back-end
WRONG_PW = "wrong-secret-7731"
NIL_PW = "nil-user-pass"               # the password of a user called "nil"
PASSWORDS = [ALICE_PW, BOB_PW, WEIRD_PW, QUOTED_PW, GHOST_PW, WRONG_PW, NIL_PW, "carol-pass", "pop-only-pass"]

# Short where a test waits for a timeout (greeting: BackendFailureTest); the login replay shares the
# greeting timeout, so the class talking to real Dovecot gets a longer one (Dovecot may delay a reply).
TIMEOUTS = {"connect_ms": 2000, "greeting_ms": 1500, "preauth_idle_ms": 30000, "session_idle_ms": 120000,
            "shutdown_grace_ms": 2000}
REAL_BACKEND_TIMEOUTS = dict(TIMEOUTS, greeting_ms=8000)
GRACE_S = TIMEOUTS["shutdown_grace_ms"] / 1000.0

LISTENERS = [listener("imap", tls="starttls", require_tls_for_auth=True),
             listener("imaps", tls="implicit"),
             listener("plain", tls="none", require_tls_for_auth=False)]

_LIST_RE = re.compile(rb'^\* LIST \([^)]*\) (?:"(?:[^"\\]|\\.)*"|NIL) (.+)$', re.I)


def mailbox_names(untagged):
    names = set()
    for line in untagged:
        m = _LIST_RE.match(line)
        if m:
            names.add(m.group(1).strip(b'"').decode("utf-8", "replace"))
    return names


def tagged_tail(tagged):
    """The tagged response without its tag: what must be identical between two refusals."""
    return tagged.split(b" ", 1)[1]


def assert_no_password(testcase, text, passwords):
    for pw in passwords:
        for form in {pw, json.dumps(pw)[1:-1], json.dumps(pw, ensure_ascii=False)[1:-1]}:
            testcase.assertNotIn(form, text, f"a password ({pw!r}) appears in Gatehouse's log")


class GatehouseTestCase(unittest.TestCase):
    """Helpers shared by the test classes."""

    def new_gatehouse(self, backends, users, listeners=LISTENERS, timeouts=TIMEOUTS, **config):
        cfg = {"listeners": listeners, "backends": backends, "timeouts": dict(timeouts), **config}
        g = Gatehouse(cfg, users=users)
        self.addCleanup(g.cleanup)
        g.start()
        return g

    @staticmethod
    def connect(g, name="plain", source_ip=None, tls=None, server_hostname=None, greet=True, timeout=10):
        c = ImapClient(g.ports[name], tls=tls, server_hostname=server_hostname, source_ip=source_ip,
                       timeout=timeout)
        try:
            if greet:
                c.greeting()
        except BaseException:
            c.close()
            raise
        return c

    def assert_lands_on(self, client, marker, not_marker):
        untagged, _ = client.ok("lst", 'LIST "" "*"')
        names = mailbox_names(untagged)
        self.assertIn(marker, names, untagged)
        self.assertNotIn(not_marker, names, untagged)


class ImapProxyTest(GatehouseTestCase):
    """Tests sharing one pair of Dovecot back-ends and one Gatehouse (none changes what another sees)."""

    @classmethod
    def setUpClass(cls):
        cls.A = Dovecot("A", "127.0.0.11", {"alice": ALICE_PW, "weird": WEIRD_PW, "quoter": QUOTED_PW,
                                                  "nil": NIL_PW}, markers=["on-A"])
        cls.addClassCleanup(cls.A.stop)
        cls.welcome_subject = f"welcome-alice-{uuid.uuid4().hex[:8]}"
        cls.A.deliver("alice", make_message(cls.welcome_subject, body="Welcome to back-end A.\r\n"))
        cls.A.start()
        cls.B = Dovecot("B", "127.0.0.12", {"bob": BOB_PW}, markers=["on-B"])
        cls.addClassCleanup(cls.B.stop)
        cls.B.start()
        cls.users = [user("alice", ALICE_PW, "A"), user("bob", BOB_PW, "B"), user("weird", WEIRD_PW, "A"),
                     user("quoter", QUOTED_PW, "A"), user("ghost", GHOST_PW, "A"), user("nil", NIL_PW, "A"),
                     user("poponly", "pop-only-pass", "A", backend_login="alice", protocols=["pop3"])]
        cls.g = Gatehouse({"listeners": LISTENERS, "backends": [cls.A.backend_config(), cls.B.backend_config()],
                           "timeouts": dict(REAL_BACKEND_TIMEOUTS)}, users=cls.users)
        cls.addClassCleanup(cls.g.cleanup)
        cls.addClassCleanup(cls._final_log_check)
        cls.g.start()

    @classmethod
    def _final_log_check(cls):
        """After every test of the class: no password anywhere in the log, and a clean exit on SIGTERM."""
        text = cls.g.stderr_text()
        for pw in PASSWORDS:
            for form in {pw, json.dumps(pw)[1:-1], json.dumps(pw, ensure_ascii=False)[1:-1]}:
                if form in text:
                    raise AssertionError(f"password {pw!r} found in Gatehouse's log")
        cls.g.stop()

    def login_alice(self, name="plain", source_ip=None):
        c = self.connect(self.g, name, source_ip=source_ip)
        self.addCleanup(c.close)
        c.login("alice", ALICE_PW)
        return c

    # ---- routing

    def test_alice_lands_on_A_and_bob_on_B(self):
        with self.connect(self.g) as c:
            c.login("alice", ALICE_PW)
            self.assert_lands_on(c, "on-A", "on-B")
        with self.connect(self.g, "imaps", tls=client_tls_context()) as c:
            c.login("bob", BOB_PW)
            self.assert_lands_on(c, "on-B", "on-A")

    def test_login_answer_carries_backend_capabilities(self):
        with self.connect(self.g) as c:
            _, tagged = c.login("alice", ALICE_PW)
            caps = untagged_capabilities(tagged)
            # Dovecot's post-login capabilities (not the pre-auth ones Gatehouse advertises)
            self.assertIn("IMAP4REV1", caps, tagged)
            self.assertIn("IDLE", caps, tagged)
            self.assertNotIn("LOGINDISABLED", caps, tagged)
            self.assertFalse(any(c.startswith("AUTH=") for c in caps), tagged)

    def test_backend_sees_the_real_client_address(self):
        since = self.A.log_size()
        c = self.login_alice(source_ip="127.0.0.5")
        client_port = c.sock.getsockname()[1]
        self.A.wait_log(r"Login: user=<alice>.*rip=127\.0\.0\.5, lip=127\.0\.0\.1\b", since)
        ident = self.A.wait_log(r"ID sent: [^\n]*x-originating-ip=127\.0\.0\.5[^\n]*", since).group(0)
        self.assertIn(f"x-originating-port={client_port}", ident)
        self.assertIn(f"x-connected-port={self.g.ports['plain']}", ident)

    # ---- refusals that never reach a back-end

    def _refusal(self, send):
        with self.connect(self.g) as c:
            return send(c)

    def test_bad_credentials_same_answer_and_never_reach_a_backend(self):
        since_a, since_b = self.A.log_size(), self.B.log_size()
        cases = {
            "wrong password": lambda c: c.command("a", f"LOGIN alice {WRONG_PW}")[1],
            "unknown user": lambda c: c.command("a", "LOGIN nosuchuser whatever")[1],
            "empty password": lambda c: c.command("a", 'LOGIN alice ""')[1],
            "plain wrong password": lambda c: c.command("a", "AUTHENTICATE PLAIN " + plain_sasl("alice", WRONG_PW))[1],
            "plain unknown user": lambda c: c.command("a", "AUTHENTICATE PLAIN " + plain_sasl("nosuchuser", "x"))[1],
            "plain empty password": lambda c: c.command("a", "AUTHENTICATE PLAIN " + plain_sasl("alice", ""))[1],
        }
        answers = {name: self._refusal(send) for name, send in cases.items()}
        for name, tagged in answers.items():
            self.assertTrue(tagged.startswith(b"a NO"), f"{name}: {tagged!r}")
        self.assertEqual(len({tagged_tail(t) for t in answers.values()}), 1, answers)
        # A user whose protocols do not include IMAP is refused too.
        tagged = self._refusal(lambda c: c.command("a", "LOGIN poponly pop-only-pass")[1])
        self.assertTrue(tagged.startswith(b"a NO"), tagged)
        self.assert_backends_saw_no_attempt(since_a, since_b)

    def assert_backends_saw_no_attempt(self, since_a, since_b):
        # A good login afterwards: once it is in A's log, everything Gatehouse did before it is there too.
        with self.connect(self.g) as c:
            c.login("alice", ALICE_PW)
            self.A.wait_log(r"Login: user=<alice>", since_a)
        text_a = self.A.log_text(since_a)
        attempt = re.compile(r"(?i)password mismatch|unknown user|auth failed|nosuchuser|poponly|empty password"
                             r"|aborted login|user=<alice\x00|\\0|%00")
        self.assertIsNone(attempt.search(text_a), text_a)
        self.assertEqual(len(re.findall(r"Login: user=", text_a)), 1, text_a)
        text_b = self.B.log_text(since_b)
        self.assertIsNone(attempt.search(text_b), text_b)
        self.assertNotIn("Login: user=", text_b)

    def test_nul_byte_in_login_literal_is_refused_before_directory_and_backend(self):
        since_a, since_b = self.A.log_size(), self.B.log_size()
        # Each would log in as alice if the proxy cut the string at the NUL (C-string handling).
        variants = [
            ([b"LOGIN ", Literal(b"alice\x00junk"), b" " + ALICE_PW.encode()], False),
            ([b"LOGIN ", Literal(b"alice\x00junk"), b" " + ALICE_PW.encode()], True),
            ([b"LOGIN alice ", Literal(ALICE_PW.encode() + b"\x00junk")], False),
            ([b"LOGIN alice ", Literal(ALICE_PW.encode() + b"\x00junk")], True),
        ]
        for parts, literal_plus in variants:
            with self.connect(self.g) as c:
                _, tagged = c.command_parts("n", parts, literal_plus=literal_plus)
                self.assertTrue(tagged.startswith(b"n NO") or tagged.startswith(b"n BAD"), (parts, tagged))
        self.assert_backends_saw_no_attempt(since_a, since_b)

    def test_backend_refusal_is_a_generic_authentication_failure(self):
        with self.connect(self.g) as c:
            wrong = c.command("a", f"LOGIN alice {WRONG_PW}")[1]
        since = self.A.log_size()
        # From its own address: Dovecot's auth penalty for the refusal is per client IP.
        with self.connect(self.g, source_ip="127.0.0.7") as c:
            ghost = c.command("a", f"LOGIN ghost {GHOST_PW}")[1]
        self.A.wait_log(r"ghost", since)  # it did reach the back-end, which refused it
        self.assertTrue(ghost.startswith(b"a NO"), ghost)
        self.assertNotIn(b"UNAVAILABLE", ghost)
        self.assertEqual(tagged_tail(ghost), tagged_tail(wrong))

    # ---- TLS

    def test_starttls_command_injection_is_discarded(self):
        with self.connect(self.g, "imap") as c:
            c.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
            _, tagged = c.read_until_tagged("a")
            self.assertTrue(tagged.startswith(b"a OK"), tagged)
            self.assertEqual(bytes(c.buf), b"", "plaintext answer after the STARTTLS OK")
            c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="mail.example.test")
            c.send(b"c NOOP\r\n")
            untagged, tagged = c.read_tagged_any()
            self.assertTrue(tagged.startswith(b"c OK"), (untagged, tagged))
            self.assertFalse(any(u.upper().startswith(b"* CAPABILITY") for u in untagged), untagged)

    def test_login_refused_before_starttls_with_logindisabled(self):
        since = self.A.log_size()
        # Its own client address: Dovecot writes its log asynchronously, so another test's login may
        # land after `since`.
        with self.connect(self.g, "imap", greet=False, source_ip="127.0.0.8") as c:
            greeting = c.greeting()
            caps = untagged_capabilities(greeting)  # the greeting's CAPABILITY code
            self.assertIn("LOGINDISABLED", caps, greeting)
            self.assertIn("STARTTLS", caps, greeting)
            self.assertFalse(any(c.startswith("AUTH=") for c in caps), greeting)
            untagged, _ = c.ok("c", "CAPABILITY")
            caps = untagged_capabilities(untagged)
            self.assertIn("LOGINDISABLED", caps, untagged)
            self.assertIn("STARTTLS", caps, untagged)
            _, tagged = c.command("l", f"LOGIN alice {ALICE_PW}")
            self.assertTrue(tagged.startswith(b"l NO") or tagged.startswith(b"l BAD"), tagged)
            _, tagged = c.command("p", "AUTHENTICATE PLAIN " + plain_sasl("alice", ALICE_PW))
            self.assertTrue(tagged.startswith(b"p NO") or tagged.startswith(b"p BAD"), tagged)
            c.starttls(client_tls_context(), server_hostname="mail.example.test")
            untagged, _ = c.ok("c2", "CAPABILITY")
            caps = untagged_capabilities(untagged)
            self.assertNotIn("LOGINDISABLED", caps, untagged)
            self.assertNotIn("STARTTLS", caps, untagged)
            self.assertIn("AUTH=PLAIN", caps, untagged)
            c.login("alice", ALICE_PW)
            self.assert_lands_on(c, "on-A", "on-B")
        login = r"Login: user=<alice>.*rip=127\.0\.0\.8\b"
        self.A.wait_log(login, since)
        self.assertEqual(len(re.findall(login, self.A.log_text(since))), 1)

    def test_greeting_has_capability_code(self):
        with self.connect(self.g, "plain", greet=False) as c:
            greeting = c.greeting()
            self.assertIn("IMAP4REV1", untagged_capabilities(greeting), greeting)

    def test_alpn_is_strict_on_imaps(self):
        port = self.g.ports["imaps"]
        with self.assertRaises(ssl.SSLError) as cm:
            ImapClient(port, tls=client_tls_context(alpn=["http/1.1"]), server_hostname="mail.example.test").close()
        self.assertRegex(str(cm.exception), r"(?i)no.application.protocol")
        for alpn, expected in ((["imap"], "imap"), (None, None), (["http/1.1", "imap"], "imap")):
            with ImapClient(port, tls=client_tls_context(alpn=alpn), server_hostname="mail.example.test") as c:
                self.assertEqual(c.sock.selected_alpn_protocol(), expected)
                c.greeting()
                c.ok("n", "NOOP")

    def test_alpn_is_strict_after_starttls(self):
        with self.connect(self.g, "imap") as c:
            with self.assertRaises(ssl.SSLError):
                c.starttls(client_tls_context(alpn=["http/1.1"]), server_hostname="mail.example.test")

    def test_certificate_verifies_with_sni(self):
        for name in ("mail.example.test", "other.example.test"):
            ctx = client_tls_context(verify_cert=self.g.cert)
            with ImapClient(self.g.ports["imaps"], tls=ctx, server_hostname=name) as c:
                c.greeting()
                self.assertEqual(c.sock.version() in ("TLSv1.2", "TLSv1.3"), True)

    # ---- relay

    def test_10mb_append_and_fetch_are_byte_exact(self):
        body = base64.encodebytes(os.urandom(7_600_000)).replace(b"\n", b"\r\n")
        message = make_message("ten megabytes", body="").rstrip(b"\r\n") + b"\r\n\r\n" + body
        self.assertGreater(len(message), 10_000_000)
        box = f"big-{uuid.uuid4().hex[:8]}"
        with self.connect(self.g, "imaps", tls=client_tls_context(), timeout=60) as c:
            c.login("alice", ALICE_PW)
            c.ok("cr", f"CREATE {box}")
            _, tagged = c.command_parts("ap", [f"APPEND {box} ".encode(), Literal(message)], timeout=120)
            self.assertTrue(tagged.startswith(b"ap OK"), tagged)
            c.ok("se", f"SELECT {box}")
            c.send(b"fe FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n")
            resp, literals = c.read_response(timeout=120)
            _, tagged = c.read_until_tagged("fe", timeout=30)
            self.assertTrue(tagged.startswith(b"fe OK"), tagged)
        self.assertIn(b"RFC822.SIZE %d" % len(message), resp[:200])
        self.assertEqual(len(literals), 1)
        self.assertEqual(len(literals[0]), len(message))
        self.assertEqual(hashlib.sha256(literals[0]).hexdigest(), hashlib.sha256(message).hexdigest())

    def test_idle_is_relayed(self):
        c = self.login_alice()
        untagged, _ = c.ok("s", "SELECT INBOX")
        exists = [int(m.group(1)) for u in untagged for m in [re.match(rb"\* (\d+) EXISTS", u)] if m]
        self.assertEqual(len(exists), 1, untagged)
        c.send(b"i IDLE\r\n")
        self.assertTrue(c.read_line().startswith(b"+"))
        self.A.deliver("alice", make_message("idle through the proxy"))
        deadline = time.monotonic() + 15
        while True:
            m = re.match(rb"\* (\d+) EXISTS", c.read_line(max(0.01, deadline - time.monotonic())))
            if m:
                self.assertGreater(int(m.group(1)), exists[0])
                break
        c.send(b"DONE\r\n")
        _, tagged = c.read_until_tagged("i")
        self.assertTrue(tagged.startswith(b"i OK"), tagged)

    def test_client_half_close_with_everything_answered_gets_no_goodbye(self):
        """Dovecot answers every command, then closes at the client's end: that close loses nothing, so
        nothing is added. The APPEND's literal holds what looks like commands, and IDLE ends with DONE:
        neither counts as a command still owed an answer."""
        c = self.login_alice()
        box = f"half-close-{uuid.uuid4().hex[:8]}".encode()
        c.send(b"c CREATE " + box + b"\r\na APPEND " + box + b" {16+}\r\nx NOOP\r\ny NOOP\r\n\r\n"
               b"i IDLE\r\nDONE\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        lines = c.read_until_eof()
        self.assertEqual([l.split(b" ")[:2] for l in lines if not l.startswith((b"*", b"+"))],
                         [[b"c", b"OK"], [b"a", b"OK"], [b"i", b"OK"]], lines)
        self.assertFalse([l for l in lines if l.startswith(b"* BYE")], lines)

    def test_client_half_close_during_idle_gets_no_goodbye(self):
        """An IDLE the client ends by closing its side: Dovecot closes without a word, and that is no loss."""
        c = self.login_alice()
        c.ok("s", "SELECT INBOX")
        c.send(b"i IDLE\r\n")
        self.assertTrue(c.read_line().startswith(b"+"))
        c.sock.shutdown(socket.SHUT_WR)
        lines = c.read_until_eof()
        self.assertFalse([l for l in lines if l.startswith(b"* BYE")], lines)

    def test_pipelined_commands_answered_in_order(self):
        with self.connect(self.g) as c:
            c.send(f"a CAPABILITY\r\nb LOGIN alice {ALICE_PW}\r\nc SELECT INBOX\r\n".encode())
            order, untagged_c = [], []
            while len(order) < 3:
                resp, _ = c.read_response()
                if resp.startswith(b"* ") or resp.startswith(b"+"):
                    if len(order) == 2:
                        untagged_c.append(resp)
                    continue
                order.append(resp)
        self.assertEqual([r.split(b" ", 2)[:2] for r in order], [[b"a", b"OK"], [b"b", b"OK"], [b"c", b"OK"]], order)
        self.assertIn(b"[READ-WRITE]", order[2])
        self.assertTrue(any(b"[UIDVALIDITY " in u for u in untagged_c), untagged_c)
        self.assertTrue(any(re.match(rb"\* \d+ EXISTS", u) for u in untagged_c), untagged_c)

    def test_special_character_passwords(self):
        with self.connect(self.g) as c:  # synchronising literal (8-bit)
            c.login("weird", WEIRD_PW)
            self.assert_lands_on(c, "on-A", "on-B")
        with self.connect(self.g) as c:  # LITERAL+
            c.login("weird", WEIRD_PW, literal_plus=True)
        with self.connect(self.g) as c:  # quoted string with escapes
            c.login("quoter", QUOTED_PW)
            self.assert_lands_on(c, "on-A", "on-B")
        with self.connect(self.g) as c:
            c.ok("a", "AUTHENTICATE PLAIN " + plain_sasl("weird", WEIRD_PW))
            self.assert_lands_on(c, "on-A", "on-B")

    def test_nil_atom_is_a_login_name_and_a_password(self):
        # LOGIN takes astrings, and the atom NIL is one (RFC 3501 9): a user called "nil" logs in with
        # it unquoted, and NIL as a password is a wrong password, not a syntax error.
        with self.connect(self.g) as c:
            c.ok("a", f"LOGIN nil {NIL_PW}")
            self.assert_lands_on(c, "on-A", "on-B")
        with self.connect(self.g) as c:
            _, tagged = c.command("b", "LOGIN alice NIL")
            self.assertRegex(tagged, rb"^b NO \[AUTHENTICATIONFAILED\]")

    def test_authenticate_plain_dialogues(self):
        with self.connect(self.g) as c:  # SASL-IR
            c.ok("a", "AUTHENTICATE PLAIN " + plain_sasl("alice", ALICE_PW))
            self.assert_lands_on(c, "on-A", "on-B")
        with self.connect(self.g) as c:  # continuation
            c.send(b"a AUTHENTICATE PLAIN\r\n")
            self.assertTrue(c.read_line().startswith(b"+"))
            c.send(plain_sasl("bob", BOB_PW).encode() + b"\r\n")
            _, tagged = c.read_until_tagged("a")
            self.assertTrue(tagged.startswith(b"a OK"), tagged)
            self.assert_lands_on(c, "on-B", "on-A")
        with self.connect(self.g) as c:  # cancelled
            c.send(b"a AUTHENTICATE PLAIN\r\n")
            self.assertTrue(c.read_line().startswith(b"+"))
            c.send(b"*\r\n")
            _, tagged = c.read_until_tagged("a")
            self.assertTrue(tagged.startswith(b"a BAD"), tagged)
            c.ok("n", "NOOP")

    # ---- real clients

    def test_imaplib_starttls(self):
        m = imaplib.IMAP4("127.0.0.1", self.g.ports["imap"], timeout=10)
        try:
            self.assertIn("LOGINDISABLED", m.capabilities)
            m.starttls(ssl_context=client_tls_context())
            self.assertNotIn("LOGINDISABLED", m.capabilities)
            typ, _ = m.login("alice", ALICE_PW)
            self.assertEqual(typ, "OK")
            typ, data = m.list()
            self.assertIn("on-A", mailbox_names([b"* LIST " + d for d in data]))
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual(typ, "OK")
            typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            self.assertIn(self.welcome_subject.encode(), data[0][1])
        finally:
            m.shutdown()
        # a real LOGOUT too
        m = imaplib.IMAP4("127.0.0.1", self.g.ports["imap"], timeout=10)
        m.starttls(ssl_context=client_tls_context())
        m.login("bob", BOB_PW)
        self.assertEqual(m.logout()[0], "BYE")

    def test_imaplib_implicit_tls(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.g.ports["imaps"], ssl_context=client_tls_context(), timeout=10)
        try:
            typ, _ = m.login("bob", BOB_PW)
            self.assertEqual(typ, "OK")
            typ, data = m.list()
            self.assertIn("on-B", mailbox_names([b"* LIST " + d for d in data]))
            self.assertEqual(m.select("INBOX")[0], "OK")
        finally:
            self.assertEqual(m.logout()[0], "BYE")

    def test_logout_over_tls_ends_with_close_notify(self):
        # After LOGOUT Gatehouse closes without waiting for the client; over TLS the close must still
        # be clean: every answer, then close_notify, then the FIN (ssl raises SSLEOFError otherwise).
        for name, commands in (("answered by Gatehouse", "b LOGOUT\r\n"),
                               ("relayed from the back-end", f"a LOGIN alice {ALICE_PW}\r\nb LOGOUT\r\n")):
            with self.subTest(name):
                raw = socket.create_connection(("127.0.0.1", self.g.ports["imaps"]), timeout=IO_TIMEOUT)
                with client_tls_context().wrap_socket(raw, server_hostname="mail.example.test",
                                                      suppress_ragged_eofs=False) as tls:
                    tls.sendall(commands.encode())
                    received = b""
                    for _ in range(1000):  # bounded: each recv has the socket's timeout
                        chunk = tls.recv(65536)
                        if not chunk:
                            break
                        received += chunk
                    self.assertIn(b"\r\n* BYE ", received)
                    self.assertRegex(received, rb"\r\nb OK [^\r\n]*\r\n$")

    def curl(self, url):
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        r = subprocess.run(["curl", "-sS", "-k", "--max-time", "20", "--url", url, "-u", f"alice:{ALICE_PW}"]
                           + (["--ssl-reqd"] if url.startswith("imap:") else []),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_curl_starttls(self):
        port = self.g.ports["imap"]
        self.assertIn(self.welcome_subject.encode(), self.curl(f"imap://127.0.0.1:{port}/INBOX;UID=1"))
        self.assertIn(b"on-A", self.curl(f"imap://127.0.0.1:{port}/"))

    def test_curl_implicit_tls(self):
        port = self.g.ports["imaps"]
        self.assertIn(self.welcome_subject.encode(), self.curl(f"imaps://127.0.0.1:{port}/INBOX;UID=1"))
        self.assertIn(b"on-A", self.curl(f"imaps://127.0.0.1:{port}/"))

    # ---- logging

    def test_session_log_line(self):
        c = self.login_alice(source_ip="127.0.0.6")
        c.ok("s", "SELECT INBOX")
        c.send(b"z LOGOUT\r\n")
        lines = c.read_until_eof()
        self.assertTrue(lines[0].startswith(b"* BYE"), lines)

        def is_end(line):
            return line.get("user") == "alice" and "outcome" in line and "127.0.0.6" in json.dumps(line)
        line = self.g.wait_log(is_end, what="session end line for alice")
        self.assertEqual(line.get("backend"), "A", line)
        self.assertEqual(line.get("protocol"), "imap", line)
        flat = dict(_flatten(line))
        byte_counts = [v for k, v in flat.items() if "bytes" in k.lower() and isinstance(v, int)]
        self.assertGreaterEqual(len(byte_counts), 2, line)
        self.assertTrue(all(v > 0 for v in byte_counts), line)
        self.assertTrue(any("duration" in k.lower() for k in flat), line)
        assert_no_password(self, json.dumps(line, ensure_ascii=False), PASSWORDS)

    def test_no_password_in_log_after_failures(self):
        for text in (f"LOGIN alice {WRONG_PW}", "LOGIN quoter " + harness.imap_quote(QUOTED_PW + "x"),
                     "AUTHENTICATE PLAIN " + plain_sasl("bob", WRONG_PW)):
            with self.connect(self.g) as c:
                _, tagged = c.command("a", text)
                self.assertTrue(tagged.startswith(b"a NO"), tagged)
                c.send(b"z LOGOUT\r\n")
                c.read_until_eof()
        with self.connect(self.g) as c:
            c.login("weird", WEIRD_PW)
            c.send(b"z LOGOUT\r\n")
            c.read_until_eof()
        self.g.wait_log(lambda l: l.get("user") == "weird" and "outcome" in l, what="session end line for weird")
        text = self.g.stderr_text()
        assert_no_password(self, text, PASSWORDS)
        self.assertNotIn(plain_sasl("bob", WRONG_PW), text)

    # ---- a client that closes while its login is being checked

    def test_client_that_closes_during_its_login_still_gets_every_answer(self):
        ok_gate, no_gate = GatedForwarder(self.A.ip, self.A.imap_port), GatedForwarder(self.A.ip, self.A.imap_port)
        for gate in (ok_gate, no_gate):
            self.addCleanup(gate.stop)
        g = self.new_gatehouse([ok_gate.backend_config("G1"), no_gate.backend_config("G2")],
                               [user("alice", ALICE_PW, "G1"), user("ghost", GHOST_PW, "G2")],
                               timeouts=REAL_BACKEND_TIMEOUTS)
        for login, pw, gate, expected in (
                ("alice", ALICE_PW, ok_gate, [b"a OK", b"b OK", b"* BY", b"c OK"]),
                ("ghost", GHOST_PW, no_gate, [b"a NO", b"b BA", b"* BY", b"c OK"])):
            s = socket.create_connection(("127.0.0.1", g.ports["plain"]), timeout=IO_TIMEOUT)
            self.addCleanup(s.close)
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"* OK"))
            s.sendall(b'a LOGIN %s "%s"\r\nb SELECT INBOX\r\nc LOGOUT\r\n' % (login.encode(), pw.encode()))
            s.shutdown(socket.SHUT_WR)
            # Gatehouse is now logging in to the held back-end, and has read what followed the LOGIN
            # (and so the close behind it) while it waits.
            self.assertTrue(gate.accepted.wait(IO_TIMEOUT))
            local_port = s.getsockname()[1]
            wait_for(lambda: unread_bytes(g.ports["plain"], local_port) == 0, IO_TIMEOUT,
                     "Gatehouse to read the commands behind LOGIN")
            gate.release()
            lines = [l for l in f.read().split(b"\r\n") if l]
            answers = [l[:4] for l in lines if not l.startswith(b"* ") or l.startswith(b"* BYE")]
            self.assertEqual(answers, expected, lines)

    # ---- shutdown of a relayed session

    def test_sigterm_with_a_relayed_session(self):
        g = self.new_gatehouse([self.A.backend_config()], [user("alice", ALICE_PW, "A")],
                               timeouts=REAL_BACKEND_TIMEOUTS)
        c = self.connect(g)
        self.addCleanup(c.close)
        c.login("alice", ALICE_PW)
        c.ok("s", "SELECT INBOX")
        t0 = time.monotonic()
        g.terminate()
        lines = c.read_until_eof(GRACE_S + 5)
        self.assertTrue(any(l.startswith(b"* BYE") for l in lines), lines)
        self.assertEqual(g.wait_exit(GRACE_S + 5), 0, g.stderr_text()[-2000:])
        self.assertLess(time.monotonic() - t0, GRACE_S + 5)

    def test_sighup_during_the_grace_period_changes_nothing(self):
        """A log rotation's SIGHUP while sessions finish after SIGTERM: it used to take its default
        action then, killing the process and every session without a goodbye."""
        g = self.new_gatehouse([self.A.backend_config()], [user("alice", ALICE_PW, "A")],
                               timeouts=REAL_BACKEND_TIMEOUTS)
        c = self.connect(g)
        self.addCleanup(c.close)
        c.login("alice", ALICE_PW)
        g.terminate()
        g.wait_log(lambda l: l.get("msg") == "shutting down", what="shutting down")
        g.proc.send_signal(signal.SIGHUP)  # an ignored signal is discarded as it is sent
        c.ok("n", "NOOP")  # still served
        lines = c.read_until_eof(GRACE_S + 5)
        self.assertTrue(any(l.startswith(b"* BYE") for l in lines), lines)
        self.assertEqual(g.wait_exit(GRACE_S + 5), 0, g.stderr_text()[-2000:])


def _flatten(obj, prefix=""):
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flatten(v, key + ".")
        else:
            yield key, v


class BackendFailureTest(GatehouseTestCase):
    """Back-ends that refuse, never greet, close after the greeting, or die mid-session."""

    def setUp(self):
        self.silent = FakeBackend("silent")
        self.addCleanup(self.silent.stop)
        self.closer = FakeBackend("greet_close")
        self.addCleanup(self.closer.stop)
        down = {"name": "down", "address": "127.0.0.1", "ports": {"imap": closed_port(), "pop3": closed_port()},
                "tls": "none"}
        self.g = self.new_gatehouse(
            [down, self.silent.backend_config("silent"), self.closer.backend_config("closer")],
            [user("u-down", "pw-down", "down"), user("u-silent", "pw-silent", "silent"),
             user("u-closer", "pw-closer", "closer")])

    def timed_login(self, login, password):
        with self.connect(self.g) as c:
            t0 = time.monotonic()
            _, tagged = c.command("a", f"LOGIN {login} {password}", timeout=15)
            elapsed = time.monotonic() - t0
            c.ok("n", "NOOP")  # a temporary failure does not end the session
        return tagged, elapsed

    def test_backend_down_gives_unavailable_quickly(self):
        tagged, elapsed = self.timed_login("u-down", "pw-down")
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
        self.assertLess(elapsed, 3.0)

    def test_backend_that_never_greets_gives_unavailable_after_the_greeting_timeout(self):
        greeting_s = TIMEOUTS["greeting_ms"] / 1000.0
        tagged, elapsed = self.timed_login("u-silent", "pw-silent")
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
        self.assertEqual(self.silent.connections, 1)
        self.assertGreater(elapsed, greeting_s * 0.9)
        self.assertLess(elapsed, greeting_s + 3.0)

    def test_client_waiting_for_its_login_is_not_idle(self):
        """A back-end slower than the pre-login idle limit: the client waits for its answer, it is not
        idle, so it gets the tagged temporary failure, not a BYE for inactivity."""
        g = self.new_gatehouse([self.silent.backend_config("silent")], [user("u-silent", "pw-silent", "silent")],
                               timeouts=dict(TIMEOUTS, preauth_idle_ms=500, greeting_ms=1500))
        with self.connect(g) as c:
            _, tagged = c.command("a", "LOGIN u-silent pw-silent", timeout=10)
            self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
            c.ok("n", "NOOP")  # and the pre-login timer runs again afterwards
            self.assertTrue(c.read_until_eof(5)[0].startswith(b"* BYE Disconnected for inactivity"))

    def test_backend_that_closes_after_greeting_gives_unavailable(self):
        tagged, elapsed = self.timed_login("u-closer", "pw-closer")
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
        self.assertGreaterEqual(self.closer.connections, 1)
        self.assertLess(elapsed, 3.0)

    def test_backend_killed_mid_session_gives_bye_unavailable(self):
        d = Dovecot("K", "127.0.0.13", {"carol": "carol-pass"})
        self.addCleanup(d.stop)
        d.start()
        g = self.new_gatehouse([d.backend_config()], [user("carol", "carol-pass", "K")],
                               timeouts=REAL_BACKEND_TIMEOUTS)
        with self.connect(g) as c:
            c.login("carol", "carol-pass")
            c.ok("s", "SELECT INBOX")
            d.kill()
            lines = c.read_until_eof(10)
        self.assertTrue(lines, "silent close: no BYE")
        self.assertTrue(lines[-1].startswith(b"* BYE [UNAVAILABLE]"), lines)

    def test_backend_lost_after_the_client_half_closed(self):
        """A client that sends its commands, ends its side and waits for the answers: the back-end dies
        owing one, so the client is told, not left with a bare close."""
        fake = FakeImap(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n", b"",
                        b"{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n", unanswered=["SELECT"])
        self.addCleanup(fake.stop)
        g = self.new_gatehouse([fake.backend_config("F")], [user("fay", "fay-pass", "F")])
        c = self.connect(g)
        self.addCleanup(c.close)
        c.login("fay", "fay-pass")
        c.send(b"n NOOP\r\ns SELECT INBOX\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.read_until_eof(), [b"n OK done", b"* BYE [UNAVAILABLE] Connection to the mailbox server lost."])


    def test_backend_without_sasl_ir_gets_login_with_quoted_strings_and_literals(self):
        # Without SASL-IR the login is replayed as LOGIN: a quoted string for QUOTED_PW, a LITERAL+
        # literal for WEIRD_PW's 8-bit bytes.
        d = Dovecot("N", "127.0.0.14", {"weird": WEIRD_PW, "quoter": QUOTED_PW},
                    extra_conf="imap_capability = IMAP4rev1 LITERAL+ ID ENABLE IDLE\n")
        self.addCleanup(d.stop)
        d.start()
        g = self.new_gatehouse([d.backend_config()], [user("weird", WEIRD_PW, "N"), user("quoter", QUOTED_PW, "N")],
                               timeouts=REAL_BACKEND_TIMEOUTS)
        for login, password in (("weird", WEIRD_PW), ("quoter", QUOTED_PW)):
            with self.connect(g) as c:
                _, tagged = c.login(login, password)
                self.assertTrue(tagged.startswith(b"L1 OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE IDLE]"), tagged)
                c.ok("s", "SELECT INBOX")
            d.wait_log(rf"Login: user=<{login}>")

class ShutdownAndConfigTest(GatehouseTestCase):
    def test_sigterm_with_idle_preauth_session(self):
        dummy = {"name": "X", "address": "127.0.0.1", "ports": {"imap": closed_port()}, "tls": "none"}
        g = self.new_gatehouse([dummy], [user("x", "x-pass", "X")])
        c = self.connect(g)
        self.addCleanup(c.close)
        t0 = time.monotonic()
        g.terminate()
        lines = c.read_until_eof(GRACE_S + 5)
        self.assertTrue(lines and lines[-1].startswith(b"* BYE"), lines)
        self.assertEqual(g.wait_exit(GRACE_S + 5), 0, g.stderr_text()[-2000:])
        self.assertLess(time.monotonic() - t0, GRACE_S + 5)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", g.ports["plain"]), timeout=2).close()

    def test_sighup_keeps_sessions_and_says_nothing_was_reloaded(self):
        # nginx, HAProxy and Dovecot reload on SIGHUP; its default action would drop every session.
        dummy = {"name": "X", "address": "127.0.0.1", "ports": {"imap": closed_port()}, "tls": "none"}
        g = self.new_gatehouse([dummy], [user("x", "x-pass", "X")])
        c = self.connect(g)
        self.addCleanup(c.close)
        g.proc.send_signal(signal.SIGHUP)
        line = g.wait_log(lambda l: l.get("msg", "").startswith("SIGHUP ignored"), what="SIGHUP log line")
        self.assertIn("SIGTERM", line.get("to_apply_changes", ""), line)
        self.assertIsNone(g.proc.poll())
        self.assertIn(b"IMAP4rev1", c.command("c", "CAPABILITY")[0][0])  # the session lives on
        with self.connect(g) as c2:  # and new ones are served
            c2.ok("n", "NOOP")

    def test_second_instance_on_the_same_ports_is_warned_about(self):
        # SO_REUSEPORT lets a second Gatehouse of the same user bind the same ports; the kernel then
        # splits connections between the two. Allowed (a restart without refused connections), but
        # said in the log of the one that started second.
        dummy = {"name": "X", "address": "127.0.0.1", "ports": {"imap": closed_port()}, "tls": "none"}
        first = self.new_gatehouse([dummy], [user("x", "x-pass", "X")])
        fixed = [dict(l, port=first.ports[l["name"]]) for l in LISTENERS]
        second = Gatehouse({"listeners": fixed, "backends": [dummy], "timeouts": TIMEOUTS},
                           users=[user("x", "x-pass", "X")])
        self.addCleanup(second.cleanup)
        second.start()
        shared = lambda line: line.get("msg", "").startswith("port shared with another process")
        warned = {}
        for name in first.ports:
            warned[name] = second.wait_log(lambda l, n=name: shared(l) and l.get("listener") == n)["port"]
        self.assertEqual(warned, first.ports)
        self.assertEqual([l for l in first.log_lines() if shared(l)], [])
        second.terminate()
        self.assertEqual(second.wait_exit(GRACE_S + 5), 0)
        with self.connect(first) as c:  # the first one serves on alone
            self.assertIn(b"IMAP4rev1", c.command("c", "CAPABILITY")[0][0])

    def test_check_config(self):
        good = Gatehouse({"listeners": LISTENERS, "backends": [], "timeouts": TIMEOUTS}, users=[])
        self.addCleanup(good.cleanup)
        rc, out = good.check_config()
        self.assertEqual(rc, 0, out)
        bad_listeners = [dict(LISTENERS[0], port="not-a-port")] + LISTENERS[1:]
        bad = Gatehouse({"listeners": bad_listeners, "backends": [], "timeouts": TIMEOUTS}, users=[])
        self.addCleanup(bad.cleanup)
        rc, out = bad.check_config()
        self.assertEqual(rc, 1, out)
        self.assertIn("/listeners/0/port", out)

    def test_check_config_loads_certificates_keys_and_ca_files(self):
        """As nginx -t: a file that passes --check-config also starts. A key of another certificate,
        a certificate file without a certificate and a back-end CA file without one all fail it."""
        other_dir = tempfile.mkdtemp(prefix="gh-other-cert-")
        self.addCleanup(shutil.rmtree, other_dir, True)
        _, other_key = harness.make_cert(other_dir)
        g = Gatehouse({"listeners": LISTENERS, "backends": [], "timeouts": TIMEOUTS}, users=[])
        self.addCleanup(g.cleanup)
        self.assertEqual(g.check_config()[0], 0)
        shutil.copy(other_key, g.key)
        rc, out = g.check_config()
        self.assertEqual(rc, 1, out)
        self.assertIn("/tls/certificates/0/key: key file", out)
        self.assertIn("does not match certificate file", out)
        with open(g.cert, "w") as f:
            f.write("not a certificate\n")
        rc, out = g.check_config()
        self.assertEqual(rc, 1, out)
        self.assertIn("/tls/certificates/0/cert: certificate file", out)
        self.assertIn("no PEM certificate found", out)
        bad_ca = os.path.join(other_dir, "ca.pem")
        with open(bad_ca, "w") as f:
            f.write("not a certificate either\n")
        backend = {"name": "A", "address": "127.0.0.11", "ports": {"imap": 143}, "tls": "implicit",
                   "ca_file": bad_ca}
        g2 = Gatehouse({"listeners": [LISTENERS[0]], "backends": [backend], "timeouts": TIMEOUTS}, users=[])
        self.addCleanup(g2.cleanup)
        rc, out = g2.check_config()
        self.assertEqual(rc, 1, out)
        self.assertIn("/backends/0: ca_file " + bad_ca, out)


if __name__ == "__main__":
    unittest.main()
