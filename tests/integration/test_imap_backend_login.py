"""How Gatehouse logs in to IMAP back-ends that are not the Dovecot of the other tests: one that
forbids LOGIN (LOGINDISABLED), one that writes its keywords in lower case, one that says [ALERT]
for the user. A scripted back-end, because a real one cannot be made to show each of these on cue.
"""

import base64
import re
import socket
import time
import unittest

from harness import IO_TIMEOUT, FakeImap, Gatehouse, ScriptedServer, listener, user


PLAIN_IR = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n"


def gatehouse_in_front_of(test, fake, timeouts=None):
    """A started Gatehouse whose one back-end, A, is the scripted `fake`, and whose one user, alice,
    lives there; both are stopped when `test` ends."""
    test.addCleanup(fake.stop)
    config = {"listeners": [listener("imap", require_tls_for_auth=False)],
              "backends": [{"name": "A", "address": "127.0.0.1", "ports": {"imap": fake.port}}]}
    if timeouts:
        config["timeouts"] = timeouts
    g = Gatehouse(config, users=[user("alice", "alice-pass", "A")])
    test.addCleanup(g.cleanup)
    g.start()
    return g


class ImapBackendLoginTest(unittest.TestCase):
    def login(self, greeting, login_answer):
        """alice logs in through Gatehouse to a FakeImap; returns it and her (untagged, tagged) answer."""
        fake = FakeImap(greeting, b"", login_answer)
        g = gatehouse_in_front_of(self, fake)
        c = g.client("imap")
        self.addCleanup(c.close)
        c.greeting()
        return fake, c.exchange(b"a LOGIN alice alice-pass\r\n", "a")

    def test_logindisabled_back_end_gets_authenticate_plain_not_login(self):
        fake, (_, tagged) = self.login(b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] ready\r\n",
                                       b"{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
        self.assertEqual(tagged, b"a OK [CAPABILITY IMAP4rev1 IDLE] Logged in.")
        self.assertNotIn("LOGIN", fake.verbs())
        i = fake.verbs().index("AUTHENTICATE")
        self.assertEqual(fake.commands[i].split(" ")[1:], ["AUTHENTICATE", "PLAIN"])
        self.assertEqual(base64.b64decode(fake.commands[i + 1]), b"\0alice\0alice-pass")

    def test_keywords_from_the_back_end_are_case_insensitive(self):
        fake, (_, tagged) = self.login(b"* ok [capability imap4rev1 auth=plain sasl-ir] ready\r\n",
                                       b"{tag} ok [capability IMAP4rev1 IDLE] Logged in\r\n")
        # The greeting's and the login's lists were understood: no CAPABILITY asked either time.
        self.assertEqual(tagged, b"a OK [CAPABILITY IMAP4rev1 IDLE] Logged in.")
        self.assertNotIn("CAPABILITY", fake.verbs())
        self.assertIn("AUTHENTICATE", fake.verbs())

    def test_lower_case_unavailable_is_a_temporary_failure(self):
        _, (_, tagged) = self.login(PLAIN_IR, b"{tag} NO [unavailable] Try later\r\n")
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)

    def test_limit_and_inuse_are_not_wrong_passwords(self):
        # RFC 5530: [LIMIT] (Dovecot past mail_max_userip_connections) and [INUSE] say "not now",
        # not "not you": told AUTHENTICATIONFAILED, a client asks its user for the password again.
        _, (_, tagged) = self.login(PLAIN_IR, b"{tag} NO [LIMIT] Maximum number of connections exceeded\r\n")
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
        _, (_, tagged) = self.login(PLAIN_IR, b"{tag} NO [inuse] Mailbox locked\r\n")
        self.assertEqual(tagged, b"a NO [INUSE] Mailbox is in use, try again later.")

    def test_alerts_reach_the_client_before_the_answer(self):
        _, (untagged, tagged) = self.login(
            PLAIN_IR, b"* OK [ALERT] Mailbox 95% full\r\n{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n")
        self.assertEqual(untagged, [b"* OK [ALERT] Mailbox 95% full"])
        self.assertTrue(tagged.startswith(b"a OK"), tagged)

    def test_alert_after_an_ok_without_capabilities_reaches_the_client(self):
        # The OK carries no CAPABILITY, so Gatehouse asks for it; the alert comes in between.
        fake = FakeImap(PLAIN_IR, b"* CAPABILITY IMAP4rev1 IDLE\r\n",
                        b"{tag} OK Logged in\r\n* OK [ALERT] Mailbox 95% full\r\n")
        g = gatehouse_in_front_of(self, fake)
        c = g.client("imap")
        self.addCleanup(c.close)
        c.greeting()
        untagged, tagged = c.exchange(b"a LOGIN alice alice-pass\r\n", "a")
        self.assertEqual(untagged, [b"* OK [ALERT] Mailbox 95% full"])
        self.assertEqual(tagged, b"a OK [CAPABILITY IMAP4rev1 IDLE] Logged in.")

    def test_alert_in_a_refusal_is_shown_and_the_answer_stays_generic(self):
        _, (untagged, tagged) = self.login(PLAIN_IR, b"{tag} NO [ALERT] Account locked: call the help desk\r\n")
        self.assertEqual(untagged, [b"* NO [ALERT] Account locked: call the help desk"])
        self.assertEqual(tagged, b"a NO [AUTHENTICATIONFAILED] Authentication failed.")

    def test_an_alert_never_carries_a_nul_to_the_client(self):
        _, (untagged, tagged) = self.login(PLAIN_IR, b"{tag} NO [ALERT] \xff\xfe\x00bad\r\n")
        self.assertEqual(untagged, [b"* NO [ALERT] \xff\xfebad"])
        self.assertEqual(tagged, b"a NO [AUTHENTICATIONFAILED] Authentication failed.")

    def test_a_flood_of_alerts_fails_the_login(self):
        """The alerts are kept for the client until the login ends, so there is a cap: a back-end
        that streamed them grew Gatehouse's memory by hundreds of MB per session."""
        flood = b"* OK [ALERT] " + b"x" * 100 + b"\r\n"
        _, (untagged, tagged) = self.login(PLAIN_IR, flood * 2000 + b"{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n")
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
        self.assertLessEqual(sum(len(line) + 2 for line in untagged), 16 * 1024)


class PlainImap4rev1(ScriptedServer):
    """An IMAP4rev1 back-end with nothing more (no LITERAL+, no SASL): a LOGIN value that cannot be
    quoted must come as a synchronising literal, sent only after this server's "+" (RFC 3501 4.3).
    `logins` holds each LOGIN's arguments as received; it accepts carol's password only."""

    PASSWORD = "pässwörd".encode()

    def __init__(self):
        self.logins = []
        super().__init__()

    def serve(self, conn):
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        reader = conn.makefile("rb")
        for _ in range(100):
            line = reader.readline()
            if not line:
                return
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            verb, _, args = rest.partition(b" ")
            values = []
            while args:  # the arguments, reading each synchronising literal after our "+"
                literal = re.match(rb"^(.*?)\{(\d+)\}$", args)
                if not literal:
                    values.append(args)
                    break
                values.append(literal.group(1))
                conn.sendall(b"+ Ready for literal data\r\n")
                values.append(reader.read(int(literal.group(2))))
                args = reader.readline().rstrip(b"\r\n")
            if verb.upper() == b"LOGIN":
                self.logins.append([v.strip().strip(b'"') for v in values if v.strip()])  # no escapes here
                ok = self.logins[-1] == [b"carol", self.PASSWORD]
                conn.sendall(tag + (b" OK [CAPABILITY IMAP4rev1] Logged in\r\n" if ok else b" NO Bad\r\n"))
            elif verb.upper() == b"LOGOUT":
                conn.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return
            else:
                conn.sendall(tag + b" OK done\r\n")


class PlainImap4rev1Test(unittest.TestCase):
    def test_an_8bit_password_goes_as_a_synchronising_literal(self):
        # It used to be refused as "no way to send these credentials": NO [UNAVAILABLE] for ever.
        fake = PlainImap4rev1()
        self.addCleanup(fake.stop)
        g = Gatehouse({"listeners": [listener("imap", require_tls_for_auth=False)],
                       "backends": [{"name": "A", "address": "127.0.0.1", "ports": {"imap": fake.port}}]},
                      users=[user("carol", "pässwörd", "A")])
        self.addCleanup(g.cleanup)
        g.start()
        c = g.client("imap")
        self.addCleanup(c.close)
        c.greeting()
        password = PlainImap4rev1.PASSWORD
        _, tagged = c.exchange(b"a LOGIN carol {%d+}\r\n" % len(password) + password + b"\r\n", "a")
        self.assertTrue(tagged.startswith(b"a OK"), (tagged, fake.logins))
        self.assertEqual(fake.logins, [[b"carol", password]])
        _, tagged = c.exchange(b"n NOOP\r\n", "n")
        self.assertEqual(tagged, b"n OK done")


class BigFetchImap(ScriptedServer):
    """An IMAP back-end that answers FETCH with one large literal and LOGOUT with BYE and OK, then
    closes at once: its end reaches Gatehouse while the client may still have much to read."""

    def __init__(self, size):
        self.body = (b"x" * 76 + b"\r\n") * (size // 78)
        super().__init__()

    def serve(self, conn):
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n")
        for raw in conn.makefile("rb"):
            tag, _, rest = raw.rstrip(b"\r\n").partition(b" ")
            verb = rest.split(b" ")[0].upper()
            if verb == b"AUTHENTICATE":
                conn.sendall(tag + b" OK [CAPABILITY IMAP4rev1] Logged in\r\n")
            elif verb == b"FETCH":
                conn.sendall(b"* 1 FETCH (BODY[] {%d}\r\n" % len(self.body) + self.body + b")\r\n" +
                             tag + b" OK Fetch completed\r\n")
            elif verb == b"LOGOUT":
                conn.sendall(b"* BYE Logging out\r\n" + tag + b" OK Logout completed\r\n")
                return
            else:
                conn.sendall(tag + b" OK done\r\n")


class EndOfSessionDeliveryTest(unittest.TestCase):
    ROUNDS = 5

    def test_half_closed_client_gets_the_whole_response_before_the_close(self):
        # The client pipelines FETCH and LOGOUT, ends its side and reads through a small receive
        # buffer, slowly. The back-end's close ended the session at once and cancelled what was still
        # queued for the client: the end of the literal and LOGOUT's OK (found by a review). Whether
        # anything is still queued then depends on the kernel's timing (about half the rounds with
        # the old binary), hence several rounds.
        fake = BigFetchImap(4_000_000)
        g = gatehouse_in_front_of(self, fake)
        for round_ in range(self.ROUNDS):
            with self.subTest(round=round_):
                response = self.fetch_and_logout_half_closed(g.port("imap"))
                self.assertTrue(response.endswith(b"d OK Logout completed\r\n"), response[-200:])
                self.assertIn(fake.body + b")\r\nc OK Fetch completed\r\n", response)

    def fetch_and_logout_half_closed(self, port):
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(IO_TIMEOUT)
        s.connect(("127.0.0.1", port))

        def read_until(marker):
            data = b""
            while marker not in data:
                chunk = s.recv(4096)
                self.assertTrue(chunk, data)
                data += chunk
            return data

        read_until(b"\r\n")  # the greeting
        s.sendall(b"L LOGIN alice alice-pass\r\n")
        reply = read_until(b"\r\n")
        self.assertTrue(reply.startswith(b"L OK"), reply)
        s.sendall(b"c FETCH 1 BODY[]\r\nd LOGOUT\r\n")
        s.shutdown(socket.SHUT_WR)
        response = b""
        for _ in range(100_000):  # bounded; 4 MB through a 4 KB buffer takes about a thousand reads
            chunk = s.recv(16384)
            if not chunk:
                break
            response += chunk
            time.sleep(0.001)  # pacing, not waiting for anything: a client that reads slowly
        s.close()
        return response

class ShutdownTest(unittest.TestCase):
    GRACE_MS = 1000
    LINGER_S = 2.0  # README: the process exits at most 2 s after the grace period
    MARGIN_S = 3.0  # what a slow 2-core box may add

    def test_a_slow_reader_does_not_keep_the_process_alive_after_the_grace_period(self):
        # The client reads its FETCH a little at a time, making progress at every check: lingering
        # for it used to go on as long as it kept reading (found by a review: 40 s and counting).
        fake = BigFetchImap(20_000_000)
        g = gatehouse_in_front_of(self, fake, {"shutdown_grace_ms": self.GRACE_MS})
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(IO_TIMEOUT)
        s.connect(("127.0.0.1", g.port("imap")))
        s.recv(4096)  # the greeting
        s.sendall(b"L LOGIN alice alice-pass\r\n")
        self.assertTrue(s.recv(4096).startswith(b"L OK"))
        s.sendall(b"c FETCH 1 BODY[]\r\n")
        self.assertTrue(s.recv(16384))  # the literal is on its way
        started = time.monotonic()
        g.terminate()
        received = 0
        deadline = started + self.GRACE_MS / 1000 + self.LINGER_S + 20
        while time.monotonic() < deadline and g.proc.poll() is None:
            chunk = s.recv(16384)
            if not chunk:
                break
            received += len(chunk)
            time.sleep(0.05)  # pacing, not waiting for anything: a client that reads slowly
        self.assertEqual(g.wait_exit(self.LINGER_S + self.MARGIN_S), 0)
        self.assertLess(time.monotonic() - started, self.GRACE_MS / 1000 + self.LINGER_S + self.MARGIN_S)
        self.assertLess(received, len(fake.body))  # the reader was still behind when it ended


class SessionLogTest(unittest.TestCase):
    def test_bytes_pipelined_behind_the_login_are_counted_once(self):
        fake = FakeImap(PLAIN_IR, b"", b"{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
        g = gatehouse_in_front_of(self, fake)
        c = g.client("imap")
        self.addCleanup(c.close)
        c.greeting()
        login = b"a LOGIN alice alice-pass\r\n"
        pipelined = b"".join(b"n%d NOOP\r\n" % i for i in range(50))
        c.send(login + pipelined)
        c.read_until_tagged("n49")
        c.send(b"z LOGOUT\r\n")
        c.read_until_tagged("z")
        end = g.wait_log(lambda l: l.get("msg") == "session end" and l.get("user") == "alice", what="session end")
        self.assertEqual(end["bytes_in"], len(login) + len(pipelined) + len(b"z LOGOUT\r\n"), end)


if __name__ == "__main__":
    unittest.main()
