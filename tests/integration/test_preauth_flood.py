"""Unauthenticated clients that try to make Gatehouse work for them: one that pipelines commands
and never reads the answers must not grow Gatehouse's memory (its input pauses until it reads),
a failed login is answered only after timeouts.auth_failure_delay_ms, without holding up
anyone else, and one that keeps busy without logging in is sent away at
timeouts.login_deadline_ms. IMAP, POP3 and SMTP submission alike; no back-end is ever reached.
"""

import select
import socket
import ssl
import time
import unittest

from harness import Gatehouse, client_tls_context, closed_port, listener, user

# A command that is cheap to send and dear to answer, per protocol, and the line that ends its answer.
FLOODS = {
    "imap": (b"a CAPABILITY\r\n", b"a OK Capability completed.\r\n"),
    "imaps": (b"a CAPABILITY\r\n", b"a OK Capability completed.\r\n"),
    "pop3": (b"CAPA\r\n", b"\r\n.\r\n"),
    "submission": (b"EHLO flood.example\r\n", b"250 8BITMIME\r\n"),
}
SEND_CAP = 48 << 20       # what an unbounded server would swallow before we give up
STALL_SECONDS = 1.5       # not writable this long: the server has stopped reading
FLOOD_DEADLINE = 30       # the whole flood, whatever happens
GROWTH_LIMIT = 16 << 20   # Gatehouse's RSS growth allowed while a client floods


def start_gatehouse(test_class, timeouts, submission=None):
    """Gatehouse with plaintext IMAP, IMAPS, POP3 and submission listeners; its one back-end is a
    closed port (nothing here may reach it)."""
    closed = closed_port()
    extra = {"submission": submission} if submission else {}
    g = Gatehouse({**extra,
        "listeners": [listener("imap", protocol="imap", require_tls_for_auth=False),
                      listener("imaps", protocol="imap", tls="implicit"),
                      listener("pop3", protocol="pop3", require_tls_for_auth=False),
                      listener("submission", protocol="submission", require_tls_for_auth=False)],
        "backends": [{"name": "A", "address": "127.0.0.11",
                      "ports": {"imap": closed, "pop3": closed, "submission": closed}}],
        "timeouts": timeouts},
        users=[user("alice", "alice-pass", "A", protocols=("imap", "pop3", "submission"))])
    test_class.addClassCleanup(g.cleanup)
    g.start()
    return g


def sanitized(pid):
    """Whether the process runs under AddressSanitizer, whose quarantine keeps freed memory resident:
    its RSS then says nothing about what Gatehouse holds."""
    with open(f"/proc/{pid}/maps") as f:
        return any("libasan" in line for line in f)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PreauthFloodTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = start_gatehouse(cls, {"preauth_idle_ms": 20000})

    def connect(self, name):
        s = socket.socket()
        # A small send buffer, so that we notice soon when Gatehouse stops reading. (Not a small
        # receive buffer: its window updates would come too rarely for the drain afterwards.)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.settimeout(10)
        s.connect(("127.0.0.1", self.g.port(name)))
        if name == "imaps":
            s = client_tls_context().wrap_socket(s)
        self.addCleanup(s.close)
        return s

    def flood(self, s, command):
        """Sends `command` over and over without reading. Returns how many bytes were sent in full
        when the server stopped reading (or the cap or deadline was reached), and the data of a TLS
        write that was begun but not finished (OpenSSL must be given it again, and nothing else)."""
        s.setblocking(False)
        block = command * (65536 // len(command))
        sent = 0
        deadline = time.monotonic() + FLOOD_DEADLINE
        pending = b""
        unfinished = b""
        while sent < SEND_CAP and time.monotonic() < deadline:
            _, writable, _ = select.select([], [s], [], STALL_SECONDS)
            if not writable:
                break
            data = pending or block
            try:
                n = s.send(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError) as e:
                # TLS: the record could not be written yet; select() decides.
                unfinished = data if isinstance(e, ssl.SSLError) else b""
                pending = data
                continue
            unfinished = b""
            sent += n
            pending = data[n:]
        s.setblocking(True)
        return sent, unfinished

    def drain(self, s, end_line, expected, reader_deadline=120):
        """Reads until `expected` answers ending in `end_line` have arrived."""
        s.settimeout(10)
        seen, carry = 0, b""
        deadline = time.monotonic() + reader_deadline
        while seen < expected and time.monotonic() < deadline:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data = carry + chunk
            seen += data.count(end_line)
            carry = data[-(len(end_line) - 1):]
        return seen

    def check_flood_is_bounded_and_fully_answered(self, name):
        command, end_line = FLOODS[name]
        s = self.connect(name)
        before = rss_bytes(self.g.proc.pid)
        sent, unfinished = self.flood(s, command)
        grown = rss_bytes(self.g.proc.pid) - before
        self.assertLess(sent, SEND_CAP // 2, f"{name}: Gatehouse kept reading {sent} bytes of commands "
                                             "whose answers were not read")
        if not sanitized(self.g.proc.pid):
            self.assertLess(grown, GROWTH_LIMIT, f"{name}: Gatehouse grew {grown} bytes")
        # Nothing was lost: once the client reads, every whole command sent is answered, in order
        # (we must not send more before reading: Gatehouse is not reading us).
        whole = sent // len(command)
        self.assertEqual(self.drain(s, end_line, whole), whole)
        if unfinished:  # a TLS record half written when Gatehouse paused: it goes out now
            s.sendall(unfinished)
            sent += len(unfinished)
            more = sent // len(command) - whole
            self.assertEqual(self.drain(s, end_line, more), more)
        # The session goes on where it paused: the command cut by the last send is completed.
        s.sendall(command[sent % len(command):] + command)
        self.assertEqual(self.drain(s, end_line, 2), 2)

    def test_imap_capability_flood_pauses_input(self):
        self.check_flood_is_bounded_and_fully_answered("imap")

    def test_imaps_capability_flood_pauses_input(self):
        self.check_flood_is_bounded_and_fully_answered("imaps")

    def test_pop3_capa_flood_pauses_input(self):
        self.check_flood_is_bounded_and_fully_answered("pop3")

    def test_smtp_ehlo_flood_pauses_input(self):
        self.check_flood_is_bounded_and_fully_answered("submission")


DELAY_MS = 800
WRONG_LOGINS = {
    "imap": (b"a LOGIN alice wrong\r\nb NOOP\r\n", b"a NO [AUTHENTICATIONFAILED]", b"b OK"),
    "pop3": (b"USER alice\r\nPASS wrong\r\nNOOP\r\n", b"-ERR [AUTH]", b"-ERR"),
    "submission": (b"EHLO x\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\nNOOP\r\n", b"535 5.7.8", b"250 2.0.0 OK"),
}


class AuthFailureDelayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = start_gatehouse(cls, {"auth_failure_delay_ms": DELAY_MS})

    def connect(self, name):
        s = socket.create_connection(("127.0.0.1", self.g.port(name)), timeout=10)
        self.addCleanup(s.close)
        f = s.makefile("rb")
        self.addCleanup(f.close)
        f.readline()  # greeting
        return s, f

    def check_delayed_and_others_unaffected(self, name):
        commands, refusal, next_answer = WRONG_LOGINS[name]
        s, f = self.connect(name)
        started = time.monotonic()
        s.sendall(commands)
        # Meanwhile another client is served at once: the delay is a timer, not a stall.
        other, other_f = self.connect(name)
        other.sendall(FLOODS[name][0])
        last_line = FLOODS[name][1].split(b"\r\n")[-2] + b"\r\n"
        while other_f.readline() != last_line:
            pass
        readable, _, _ = select.select([s], [], [], 0)
        lines = []
        while True:
            line = f.readline()
            self.assertTrue(line, lines)
            lines.append(line)
            if line.startswith(refusal):
                break
        waited = time.monotonic() - started
        # Only EHLO's answer and USER's +OK may come before the refusal; the refusal waits.
        self.assertFalse(readable and name == "imap", "IMAP answered before the delay")
        self.assertGreaterEqual(waited, DELAY_MS / 1000 * 0.9, lines)
        # What the client pipelined behind the failed login is answered after it, in order.
        self.assertTrue(f.readline().startswith(next_answer))

    def test_imap_failed_login_is_answered_after_the_delay(self):
        self.check_delayed_and_others_unaffected("imap")

    def test_pop3_failed_login_is_answered_after_the_delay(self):
        self.check_delayed_and_others_unaffected("pop3")

    def test_smtp_failed_login_is_answered_after_the_delay(self):
        self.check_delayed_and_others_unaffected("submission")

    def test_imap_refused_sasl_authzid_is_delayed_too(self):
        s, f = self.connect("imap")
        started = time.monotonic()
        # PLAIN with an authorisation identity for someone else: refused without a directory call.
        s.sendall(b"a AUTHENTICATE PLAIN Ym9iAGFsaWNlAGFsaWNlLXBhc3M=\r\n")
        line = f.readline()
        self.assertTrue(line.startswith(b"a NO"), line)
        self.assertGreaterEqual(time.monotonic() - started, DELAY_MS / 1000 * 0.9)


IDLE_MS = 1000
LOGIN_DEADLINE_MS = 2500
DRIP_SECONDS = 0.1       # between two bytes: well inside IDLE_MS
DRIP_BOUND_SECONDS = 15  # the whole drip, whatever happens
DRIPS = {
    "imap": (b"a NOOP\r\n", b"a OK", b"* BYE Disconnected for inactivity.\r\n"),
    "pop3": (b"CAPA\r\n", b".\r\n", b"-ERR Disconnected for inactivity.\r\n"),
    "submission": (b"NOOP\r\n", b"250 2.0.0 OK", b"421 4.4.2 "),
}


class LoginDeadlineTest(unittest.TestCase):
    """A client that sends a byte now and then never lets the pre-auth idle timer fire; the login
    deadline (Dovecot's 3-minute login timeout) ends it all the same."""

    @classmethod
    def setUpClass(cls):
        cls.g = start_gatehouse(cls, {"preauth_idle_ms": IDLE_MS, "login_deadline_ms": LOGIN_DEADLINE_MS},
                                submission={"command_timeout_ms": IDLE_MS})

    def check_drip_ends_at_the_deadline(self, name):
        command, answered, goodbye = DRIPS[name]
        started = time.monotonic()
        s = socket.create_connection(("127.0.0.1", self.g.port(name)), timeout=10)
        self.addCleanup(s.close)
        received = b""
        closed = False
        sent = 0
        while not closed and time.monotonic() - started < DRIP_BOUND_SECONDS:
            try:
                s.send(command[sent % len(command):][:1])
                sent += 1
            except OSError:
                break  # closed while we were not looking: what it said is read below
            # Waits for Gatehouse to say something, at most until the next byte is due.
            while select.select([s], [], [], DRIP_SECONDS)[0]:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        waited = time.monotonic() - started
        # Sent away while still dripping (after it, the idle timer would say the same goodbye).
        self.assertTrue(closed, f"still open after {waited:.1f} s: {received[-300:]!r}")
        self.assertIn(goodbye, received.splitlines(keepends=True)[-1], received[-300:])
        # The client was busy all along: whole commands were answered before the goodbye.
        self.assertGreaterEqual(received.count(answered), 2, received[-300:])
        self.assertGreaterEqual(waited, LOGIN_DEADLINE_MS / 1000 * 0.9)

    def test_imap_busy_client_is_sent_away_at_the_login_deadline(self):
        self.check_drip_ends_at_the_deadline("imap")

    def test_pop3_busy_client_is_sent_away_at_the_login_deadline(self):
        self.check_drip_ends_at_the_deadline("pop3")

    def test_smtp_busy_client_is_sent_away_at_the_login_deadline(self):
        self.check_drip_ends_at_the_deadline("submission")


class SubmissionCommandTimeoutTest(unittest.TestCase):
    """RFC 5321 4.5.3.2.7: a server waits at least 5 minutes for the next command. A login deadline
    shorter than submission's command timeout (Dovecot's 3 minutes against 5, by default) must not
    cut that wait short (found by a review: a silent client was sent away after 3 minutes)."""

    COMMAND_TIMEOUT_MS = 2000

    @classmethod
    def setUpClass(cls):
        cls.g = start_gatehouse(cls, {"preauth_idle_ms": IDLE_MS, "login_deadline_ms": IDLE_MS},
                                submission={"command_timeout_ms": cls.COMMAND_TIMEOUT_MS})

    def test_silent_client_waits_the_whole_command_timeout(self):
        started = time.monotonic()
        s = socket.create_connection(("127.0.0.1", self.g.port("submission")), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"EHLO client.example\r\n")
        received = b""
        while not received.endswith(b"\r\n") or b"421 " not in received:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        waited = time.monotonic() - started
        self.assertIn(b"\r\n421 4.4.2 ", received)
        self.assertGreaterEqual(waited, self.COMMAND_TIMEOUT_MS / 1000 * 0.9, received)


if __name__ == "__main__":
    unittest.main()
