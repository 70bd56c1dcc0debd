"""Pre-login limits end to end: every limit has a config key, a protocol-correct answer, and the
session (not the process) ends. Gatehouse runs with small limits; the back-end is a closed port
except where a login must fail at the directory (no back-end is reached in this file).
"""

import socket
import time
import unittest

from harness import FakeImap, Gatehouse, ImapClient, closed_port, listener, user, wait_for

LIMITS = {"max_line": 200, "max_auth_literal": 100, "max_bad_commands": 3, "max_auth_failures": 2}
TIMEOUTS = {"preauth_idle_ms": 1500, "connect_ms": 1000, "greeting_ms": 1000}


class PreauthLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                           "backends": [{"name": "A", "address": "127.0.0.11", "ports": {"imap": closed_port()}}],
                           "limits": LIMITS, "timeouts": TIMEOUTS},
                          users=[user("alice", "alice-pass", "A")])
        cls.addClassCleanup(cls.g.cleanup)
        cls.g.start()

    def client(self):
        c = self.g.client("plain")
        self.addCleanup(c.close)
        self.assertTrue(c.greeting().startswith(b"* OK"))
        return c

    def assert_still_serving(self):
        c = self.client()
        _, tagged = c.exchange(b"z NOOP\r\n", "z")
        self.assertEqual(tagged, b"z OK NOOP completed.")

    def test_logout_answers_exactly_and_closes(self):
        c = self.client()
        c.send(b"a LOGOUT\r\n")
        self.assertEqual(c.read_until_eof(), [b"* BYE Logging out.", b"a OK Logout completed."])

    def test_enable_before_login_is_ignored_as_dovecot_does(self):
        c = self.client()
        for tag in ("e1", "e2", "e3", "e4"):  # more than max_bad_commands: none of them counts
            untagged, tagged = c.exchange(tag.encode() + b" ENABLE CONDSTORE\r\n", tag)
            self.assertEqual(untagged, [b"* ENABLED"])
            self.assertEqual(tagged, tag.encode() + b" OK ENABLE ignored in non-authenticated state.")

    def test_trailing_space_is_tolerated(self):
        c = self.client()
        _, tagged = c.exchange(b"a NOOP \r\n", "a")
        self.assertEqual(tagged, b"a OK NOOP completed.")

    def test_id_arguments_are_checked(self):
        c = self.client()
        _, tagged = c.exchange(b'a ID ("name" "x" "version" NIL)\r\n', "a")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        _, tagged = c.exchange(b"b ID NIL\r\n", "b")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        for tag, args in ((b"c", b'("name")'), (b"d", b'(("name" "x"))')):
            _, tagged = c.exchange(tag + b" ID " + args + b"\r\n", tag.decode())
            self.assertTrue(tagged.startswith(tag + b" BAD"), tagged)

    def test_empty_plain_message_is_a_failed_login(self):
        c = self.client()
        _, tagged = c.exchange(b"a AUTHENTICATE PLAIN =\r\n", "a")
        self.assertTrue(tagged.startswith(b"a NO [AUTHENTICATIONFAILED]"), tagged)

    def test_overlong_line_ends_the_session_with_bye(self):
        c = self.client()
        c.send(b"a " + b"x" * 1000 + b"\r\n")
        lines = c.read_until_eof()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith(b"* BYE"), lines)
        self.assert_still_serving()

    def test_a_megabyte_without_a_line_end_is_cut_off(self):
        c = self.client()
        try:
            c.send(b"a LOGIN " + b"y" * (1 << 20))
        except OSError:
            pass  # the server may close before it has read everything: that is the point
        lines = c.read_until_eof()
        self.assertTrue(lines and lines[0].startswith(b"* BYE"), lines)
        self.assert_still_serving()

    def test_synchronising_literal_over_the_limit_is_refused_before_the_continuation(self):
        c = self.client()
        c.send(b"a LOGIN {101}\r\n")
        line = c.read_line()
        self.assertFalse(line.startswith(b"+"), line)
        self.assertTrue(line.startswith(b"a BAD") or line.startswith(b"a NO"), line)
        # The session goes on: the client did not send the literal.
        _, tagged = c.exchange(b"b NOOP\r\n", "b")
        self.assertEqual(tagged, b"b OK NOOP completed.")

    def test_literal_within_the_limit_gets_a_continuation(self):
        c = self.client()
        c.send(b"a LOGIN {5}\r\n")
        self.assertTrue(c.read_line().startswith(b"+"))
        c.send(b"alice {10}\r\n")
        self.assertTrue(c.read_line().startswith(b"+"))
        c.send(b"wrong-pass\r\n")
        _, tagged = c.read_until_tagged("a")
        self.assertTrue(tagged.startswith(b"a NO [AUTHENTICATIONFAILED]"), tagged)

    def test_non_synchronising_literal_over_the_limit_ends_the_session(self):
        c = self.client()
        c.send(b"a LOGIN {5000+}\r\n" + b"z" * 5000 + b" x\r\n")
        lines = c.read_until_eof()
        self.assertTrue(lines and lines[-1].startswith(b"* BYE"), lines)
        self.assertFalse(any(l.startswith(b"z") for l in lines), lines)

    def test_too_many_bad_commands_end_the_session(self):
        c = self.client()
        c.send(b"a FOO\r\nb BAR\r\nc BAZ\r\nd NOOP\r\n")
        lines = c.read_until_eof()
        self.assertEqual([l.split(b" ")[0] for l in lines], [b"a", b"b", b"c", b"*"], lines)
        self.assertTrue(lines[-1].startswith(b"* BYE"), lines)
        self.assert_still_serving()

    def test_too_many_failed_logins_end_the_session(self):
        c = self.client()
        c.send(b"a LOGIN alice wrong1\r\nb LOGIN alice wrong2\r\nc NOOP\r\n")
        lines = c.read_until_eof()
        self.assertTrue(lines[0].startswith(b"a NO [AUTHENTICATIONFAILED]"), lines)
        self.assertTrue(lines[1].startswith(b"b NO [AUTHENTICATIONFAILED]"), lines)
        self.assertEqual(lines[2:], [b"* BYE Too many authentication failures."])

    def test_silent_client_is_disconnected_after_the_preauth_timeout(self):
        c = self.client()
        started = time.monotonic()
        lines = c.read_until_eof(timeout=10)
        waited = time.monotonic() - started
        self.assertEqual(lines, [b"* BYE Disconnected for inactivity."])
        self.assertGreaterEqual(waited, TIMEOUTS["preauth_idle_ms"] / 1000 * 0.8)


class FileDescriptorLimitTest(unittest.TestCase):
    """The open-file limit Gatehouse runs with."""

    def test_the_soft_limit_is_raised_to_the_hard_one_and_a_short_limit_is_said(self):
        g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                       "backends": [{"name": "X", "address": "127.0.0.1", "ports": {"imap": closed_port()}}]},
                      users=[user("x", "x-pass", "X")])
        self.addCleanup(g.cleanup)
        g.start(nofile=(256, 4096))
        with open(f"/proc/{g.proc.pid}/limits") as f:
            line = [l for l in f if l.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], ["4096", "4096"], line)
        # 10000 connections by default need about 20000 descriptors.
        warning = g.wait_log(lambda l: l.get("msg", "").startswith("open file limit is below"), what="limit warning")
        self.assertEqual((warning["limit"], warning["max_connections"]), (4096, 10000), warning)

    def test_running_out_of_descriptors_pauses_accepting_and_sessions_go_on(self):
        """As nginx: accepting pauses, the sessions already open go on, and new clients are served
        again once descriptors are free. libuv's own accept loop retried accept() for ever: its spare
        descriptor is per loop, so with two workers both spun at 100 % CPU and every session stalled."""
        fake = FakeImap(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n", b"",
                        b"{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n")
        self.addCleanup(fake.stop)
        g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                       "backends": [fake.backend_config("F")]}, users=[user("fay", "fay-pass", "F")], workers=2)
        self.addCleanup(g.cleanup)
        g.start(nofile=64)
        c = ImapClient(g.ports["plain"])
        self.addCleanup(c.close)
        c.greeting()
        c.login("fay", "fay-pass")
        flood = []
        self.addCleanup(lambda: [s.close() for s in flood])
        # Which worker runs out first is a race: a few rounds make the stall (or the pause) certain.
        for _ in range(4):
            for _ in range(150):  # more than 64 descriptors' worth
                s = socket.socket()
                s.settimeout(5)
                try:
                    s.connect(("127.0.0.1", g.ports["plain"]))
                except OSError:
                    s.close()
                    continue
                flood.append(s)
            c.ok("n", "NOOP", timeout=5)  # the logged-in session is served meanwhile
            for s in flood:
                s.close()
            flood.clear()
        pause = g.wait_log(lambda l: l.get("msg", "").startswith("accept failed: out of file descriptors"),
                           what="the pause")
        self.assertEqual(pause["pause_ms"], 500, pause)

        def greeted():
            try:
                with ImapClient(g.ports["plain"], timeout=2) as fresh:
                    return fresh.greeting()
            except (OSError, EOFError, TimeoutError):
                return None  # refused or reset while accepting is paused
        wait_for(greeted, 15, "a new client greeted after the descriptors were freed")
        c.ok("m", "NOOP")


if __name__ == "__main__":
    unittest.main()
