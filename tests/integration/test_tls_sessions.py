"""TLS session resumption through Gatehouse, with real Dovecot behind it and Python's ssl (OpenSSL) in front.

A site runs several Gatehouse instances behind a load balancer and restarts them at will, so a client's
next connection usually reaches another process. With the same `tls.session_ticket_key_files`, a ticket
sealed by one instance opens on any other: the client skips the certificate and signature of a full
handshake. Resuming TLS never replaces the login: every connection still authenticates.
"""

import os
import shutil
import socket
import ssl
import tempfile
import unittest

from harness import IO_TIMEOUT, Dovecot, Gatehouse, client_tls_context, listener, make_cert, user

PW = "alice-tls-pass"
WRONG_PW = "not-alice-9931"
SERVER_NAME = "mail.example.test"


class TlsSessionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.A = Dovecot("A", "127.0.0.61", {"alice": PW}, markers=["on-A"])
        cls.addClassCleanup(cls.A.stop)
        cls.A.start()
        cls.dir = tempfile.mkdtemp(prefix="gh-tls-sessions-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        # The instances of a pool share their certificate as well as their ticket keys.
        cls.cert, cls.key = make_cert(cls.dir)
        cls.keys = {}
        for name, size in (("current", 80), ("previous", 48), ("next", 80), ("stranger", 80)):
            path = os.path.join(cls.dir, f"{name}.key")
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            cls.keys[name] = path

    def gatehouse(self, *key_names):
        tls = {"certificates": [{"cert": self.cert, "key": self.key, "names": [SERVER_NAME]}]}
        if key_names:
            tls["session_ticket_key_files"] = [self.keys[n] for n in key_names]
        g = Gatehouse({"listeners": [listener("imaps", tls="implicit"),
                                     listener("pop3s", tls="implicit", protocol="pop3")],
                       "backends": [self.A.backend_config()], "tls": tls},
                      users=[user("alice", PW, "A", protocols=["imap", "pop3"])])
        self.addCleanup(g.cleanup)
        g.start()
        return g

    def connect(self, g, ctx, session=None, name="imaps"):
        """A TLS connection whose greeting (and with it the session tickets) has been read."""
        raw = socket.create_connection(("127.0.0.1", g.ports[name]), timeout=IO_TIMEOUT)
        try:
            s = ctx.wrap_socket(raw, server_hostname=SERVER_NAME, session=session)
        except BaseException:
            raw.close()
            raise
        self.addCleanup(s.close)
        s.settimeout(IO_TIMEOUT)
        s.reader = s.makefile("rb")
        self.addCleanup(s.reader.close)  # before s.close: the socket closes once its file has
        greeting = s.reader.readline()
        self.assertTrue(greeting.startswith(b"+OK" if name == "pop3s" else b"* OK"), greeting)
        return s

    def command(self, s, line):
        """Sends one IMAP command tagged `t`; returns its tagged response."""
        s.sendall(b"t " + line.encode() + b"\r\n")
        while True:
            response = s.reader.readline()
            self.assertTrue(response, "connection closed")
            if response.startswith(b"t "):
                return response

    def session_after_login(self, g, ctx):
        """Logs in and out over a full handshake; returns the session the client keeps."""
        s = self.connect(g, ctx)
        self.assertFalse(s.session_reused)
        self.assertTrue(self.command(s, f'LOGIN alice "{PW}"').startswith(b"t OK"))
        self.assertTrue(self.command(s, "LOGOUT").startswith(b"t OK"))
        self.assertTrue(s.session.has_ticket, "no session ticket arrived")
        return s.session

    def test_a_session_from_one_instance_resumes_on_another_and_still_logs_in(self):
        ctx = client_tls_context()
        first, second = self.gatehouse("current"), self.gatehouse("current")
        session = self.session_after_login(first, ctx)
        s = self.connect(second, ctx, session)
        self.assertTrue(s.session_reused, "the second instance did not resume the first one's session")
        # Resuming TLS proves nothing about the user: the login is asked for and checked as always.
        self.assertTrue(self.command(s, "SELECT INBOX").startswith(b"t BAD"))
        self.assertTrue(self.command(s, f'LOGIN alice "{WRONG_PW}"').startswith(b"t NO"))
        self.assertTrue(self.command(s, f'LOGIN alice "{PW}"').startswith(b"t OK"))
        self.assertTrue(self.command(s, "SELECT on-A").startswith(b"t OK"))
        self.assertTrue(self.command(s, "LOGOUT").startswith(b"t OK"))
        # Operators see the resumption rate in the session log.
        for g, resumed in ((first, False), (second, True)):
            end = g.wait_log(lambda l: l.get("msg") == "session end" and l.get("outcome") == "logout",
                             what="session end")
            self.assertIs(end.get("tls_resumed"), resumed, end)
            log = open(g.stderr_path, encoding="utf-8", errors="replace").read()
            self.assertNotIn(PW, log)

    def test_rotation_keeps_old_tickets_and_seals_with_the_new_key(self):
        ctx = client_tls_context()
        session = self.session_after_login(self.gatehouse("current"), ctx)
        rotated = self.gatehouse("next", "current")
        s = self.connect(rotated, ctx, session)
        self.assertTrue(s.session_reused, "the previous key no longer opens its tickets")
        self.assertTrue(self.command(s, f'LOGIN alice "{PW}"').startswith(b"t OK"))
        self.assertTrue(self.command(s, "LOGOUT").startswith(b"t OK"))
        # The ticket it gave out was sealed with the new key: an instance without the old key opens it.
        s = self.connect(self.gatehouse("next"), ctx, s.session)
        self.assertTrue(s.session_reused, "the new ticket was not sealed with the first key")

    def test_an_unknown_ticket_is_a_full_handshake(self):
        ctx = client_tls_context()
        session = self.session_after_login(self.gatehouse("current"), ctx)
        for g in (self.gatehouse("stranger"), self.gatehouse()):
            s = self.connect(g, ctx, session)
            self.assertFalse(s.session_reused)
            self.assertTrue(self.command(s, f'LOGIN alice "{PW}"').startswith(b"t OK"))

    def test_tls12_sessions_resume_by_ticket(self):
        ctx = client_tls_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        first, second = self.gatehouse("previous"), self.gatehouse("previous")
        session = self.session_after_login(first, ctx)
        s = self.connect(second, ctx, session)
        self.assertEqual(s.version(), "TLSv1.2")
        self.assertTrue(s.session_reused)

    def test_an_imap_session_does_not_resume_on_pop3(self):
        ctx = client_tls_context()
        g = self.gatehouse("current")
        session = self.session_after_login(g, ctx)
        s = self.connect(g, ctx, session, name="pop3s")
        self.assertFalse(s.session_reused, "an IMAP session resumed on the POP3 listener")
        s.sendall(b"QUIT\r\n")
        self.assertTrue(s.reader.readline().startswith(b"+OK"))

    def test_a_key_file_of_the_wrong_size_is_a_configuration_error(self):
        bad = os.path.join(self.dir, "hex.key")
        with open(bad, "w") as f:
            f.write(os.urandom(40).hex() + "\n")  # openssl rand -hex 40: text, not 80 bytes
        g = Gatehouse({"listeners": [listener("imaps", tls="implicit")], "backends": [self.A.backend_config()],
                       "tls": {"certificates": [{"cert": self.cert, "key": self.key}],
                               "session_ticket_key_files": [bad]}},
                      users=[user("alice", PW, "A")])
        self.addCleanup(g.cleanup)
        code, output = g.check_config()
        self.assertEqual(code, 1, output)
        self.assertIn("/tls/session_ticket_key_files/0", output)
        self.assertIn("larger than 80 bytes", output)


if __name__ == "__main__":
    unittest.main()
