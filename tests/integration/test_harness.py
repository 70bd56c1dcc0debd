"""The harness itself, against real Dovecot only (no Gatehouse): if these fail, the proxy tests cannot be trusted."""

import base64
import os
import shutil
import socket
import subprocess
import time
import unittest

import harness
from harness import Dovecot, FakeBackend, ImapClient, Literal, closed_port, make_message


class DovecotHarnessTest(unittest.TestCase):
    def start_dovecot(self, *args, **kwargs):
        d = Dovecot(*args, **kwargs)
        self.addCleanup(d.stop)
        d.start()
        return d

    def test_login_marker_deliver_idle_and_client_ip_from_id(self):
        d = self.start_dovecot("A", "127.0.0.11", {"alice": "alice-pass", "weird": "pä\"ss\\wörd€ {3}"},
                               markers=["on-A"])
        with ImapClient(d.imap_port, host=d.ip) as c:
            c.greeting()
            since = d.log_size()
            c.ok("i", 'ID ("x-originating-ip" "127.0.0.5" "x-originating-port" "4242" '
                      '"x-connected-ip" "127.0.0.1" "x-connected-port" "10143")')
            c.login("alice", "alice-pass")
            d.wait_log(r"Login: user=<alice>.*rip=127\.0\.0\.5, lip=127\.0\.0\.1", since)
            untagged, _ = c.ok("l", 'LIST "" "*"')
            self.assertTrue(any(b'"on-A"' in u or b" on-A" in u for u in untagged), untagged)
            untagged, _ = c.ok("s", "SELECT INBOX")
            self.assertIn(b"* 0 EXISTS", untagged)
            c.ok("n", "NOOP")
            c.send(b"i2 IDLE\r\n")
            self.assertTrue(c.read_line().startswith(b"+"))
            d.deliver("alice", make_message("idle test"))
            deadline = time.monotonic() + 10
            while True:
                line = c.read_line(max(0.01, deadline - time.monotonic()))
                if line == b"* 1 EXISTS":
                    break
            c.send(b"DONE\r\n")
            c.read_until_tagged("i2")
            _, lits = c.ok("f", "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        # 8-bit password with quotes and backslashes, via literals (no LITERAL+ needed)
        with ImapClient(d.imap_port, host=d.ip) as c:
            c.greeting()
            c.login("weird", "pä\"ss\\wörd€ {3}")
            c.ok("l", "LOGOUT")
        # wrong password is refused and logged as a mismatch
        with ImapClient(d.imap_port, host=d.ip) as c:
            c.greeting()
            since = d.log_size()
            _, tagged = c.command("w", "LOGIN alice wrong")
            self.assertTrue(tagged.startswith(b"w NO"), tagged)
            d.wait_log(r"Password mismatch", since)

    def test_append_literal_and_pop3(self):
        d = self.start_dovecot("B", "127.0.0.12", {"bob": "bob-pass"}, markers=["on-B"])
        body = b"Subject: x\r\n\r\n" + b"y" * 100000 + b"\r\n"
        with ImapClient(d.imap_port, host=d.ip) as c:
            c.greeting()
            c.login("bob", "bob-pass")
            _, tagged = c.command_parts("a", [b"APPEND INBOX ", Literal(body)])
            self.assertTrue(tagged.startswith(b"a OK"), tagged)
            c.ok("s", "SELECT INBOX")
            _, _ = c.ok("f", "FETCH 1 BODY.PEEK[]")
        with socket.create_connection((d.ip, d.pop3_port), timeout=5) as s:
            f = s.makefile("rwb")
            self.assertTrue(f.readline().startswith(b"+OK"))
            for cmd in (b"USER bob", b"PASS bob-pass", b"STAT"):
                f.write(cmd + b"\r\n")
                f.flush()
                line = f.readline()
                self.assertTrue(line.startswith(b"+OK"), (cmd, line))
            self.assertTrue(line.startswith(b"+OK 1 "), line)

    def test_fetch_returns_literal(self):
        d = self.start_dovecot("C", "127.0.0.13", {"carol": "carol-pass"})
        msg = make_message("literal", body="line\r\n" * 1000)
        d.deliver("carol", msg)
        with ImapClient(d.imap_port, host=d.ip) as c:
            c.greeting()
            c.login("carol", "carol-pass")
            c.ok("s", "SELECT INBOX")
            c.send(b"f FETCH 1 BODY.PEEK[]\r\n")
            resp, lits = c.read_response()
            self.assertEqual(lits, [msg])
            c.read_until_tagged("f")

    def test_start_stop_twice_leaves_nothing(self):
        roots = []
        for _ in range(2):
            d = Dovecot("T", "127.0.0.14", {"t": "t"})
            d.start()
            pgid = d.pgid
            roots.append(d.root)
            self.assertTrue(d.running())
            d.stop()
            self.assertFalse(harness._group_alive(pgid))
            with self.assertRaises(OSError):
                socket.create_connection((d.ip, d.imap_port), timeout=2).close()
        for r in roots:
            self.assertFalse(os.path.exists(r))

    def test_kill_drops_sessions_without_bye(self):
        d = self.start_dovecot("K", "127.0.0.15", {"k": "k"})
        with ImapClient(d.imap_port, host=d.ip) as c:
            c.greeting()
            c.login("k", "k")
            d.kill()
            self.assertEqual(c.read_until_eof(5), [])

    def test_ssl_backend(self):
        d = self.start_dovecot("S", "127.0.0.16", {"s": "s"}, ssl=True)
        ctx = harness.client_tls_context(verify_cert=d.cert)
        with ImapClient(d.imaps_port, host=d.ip, tls=ctx, server_hostname="s.example.test") as c:
            c.greeting()
            c.login("s", "s")
        with ImapClient(d.imap_port, host=d.ip) as c:
            c.greeting()
            c.starttls(ctx, server_hostname="s.example.test")
            c.login("s", "s")


class FakeBackendTest(unittest.TestCase):
    def test_modes(self):
        silent = FakeBackend("silent")
        self.addCleanup(silent.stop)
        with ImapClient(silent.port) as c:
            with self.assertRaises(TimeoutError):
                c.read_line(timeout=0.3)
        self.assertEqual(silent.connections, 1)
        gc = FakeBackend("greet_close")
        self.addCleanup(gc.stop)
        with ImapClient(gc.port) as c:
            c.greeting()
            self.assertEqual(c.read_until_eof(5), [])
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", closed_port()), timeout=2).close()


class ToolsTest(unittest.TestCase):
    def test_ssha_matches_slappasswd_format(self):
        if shutil.which("slappasswd") is None:
            self.skipTest("slappasswd (slapd) not installed")
        out = subprocess.run(["slappasswd", "-h", "{SSHA}", "-s", "secret"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        salt = base64.b64decode(out[len("{SSHA}"):])[20:]
        self.assertEqual(harness.ssha("secret", salt=salt), out)

    def test_cleanup_fails_on_a_sanitizer_report(self):
        # An ASan build aborts on an error; a test that only talks to Gatehouse may not notice.
        for report, caught in (("==1==ERROR: AddressSanitizer: heap-use-after-free on address", True),
                               ("proxy/x.cpp:3:5: runtime error: signed integer overflow", True),
                               ('{"level":"info","msg":"session end"}', False)):
            g = harness.Gatehouse({"listeners": []}, users=[])
            with open(g.stderr_path, "w") as f:
                f.write(report + "\n")
            if caught:
                with self.assertRaisesRegex(AssertionError, "sanitizer report"):
                    g.cleanup()
            else:
                g.cleanup()
            self.assertFalse(os.path.exists(g.root))


if __name__ == "__main__":
    unittest.main()
