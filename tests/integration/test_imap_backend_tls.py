"""Back-end TLS (STARTTLS and implicit, verified against a CA file) and the per-IP connection limit.

A Dovecot with ssl=yes and its own certificate (CN a.example.test) is the back-end; Gatehouse is told
to reach it three ways: STARTTLS and implicit TLS with the right name (logins work), and with a name
the certificate does not carry (verification fails: the client gets NO [UNAVAILABLE], never a login).
"""

import ssl
import tempfile
import unittest

from harness import Dovecot, Gatehouse, ScriptedServer, closed_port, listener, make_cert, user

PW = "tls-user-pass"


class BackendTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.A = Dovecot("A", "127.0.0.11", {"alice": PW}, markers=["on-A"], ssl=True)
        cls.addClassCleanup(cls.A.stop)
        cls.A.start()
        backends = [cls.A.backend_config("starttls", tls="starttls"),
                    cls.A.backend_config("implicit", tls="implicit"),
                    cls.A.backend_config("wrongname", tls="implicit", server_name="evil.example.test")]
        users = [user("st", PW, "starttls", backend_login="alice"),
                 user("im", PW, "implicit", backend_login="alice"),
                 user("wn", PW, "wrongname", backend_login="alice")]
        cls.g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                           "backends": backends}, users=users)
        cls.addClassCleanup(cls.g.cleanup)
        cls.g.start()

    def login(self, login):
        c = self.g.client("plain")
        self.addCleanup(c.close)
        c.greeting()
        _, tagged = c.exchange(f"a LOGIN {login} {PW}\r\n".encode(), "a")
        return c, tagged

    def assert_lands_on_a(self, c):
        untagged, tagged = c.exchange(b'b LIST "" "on-*"\r\n', "b")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        self.assertTrue(any(b"on-A" in line for line in untagged), untagged)

    def test_starttls_to_the_backend(self):
        before = len(self.A.log_text())
        c, tagged = self.login("st")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        self.assert_lands_on_a(c)
        # Dovecot logs the TLS session of the proxied login.
        self.A.wait_log(since=before, pattern=r"imap-login: Info: Login: user=<alice>.*, TLS")

    def test_implicit_tls_to_the_backend(self):
        before = len(self.A.log_text())
        c, tagged = self.login("im")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        self.assert_lands_on_a(c)
        self.A.wait_log(r"imap-login: Info: Login: user=<alice>.*, TLS", since=before)

    def test_certificate_for_another_name_is_refused(self):
        before = self.A.log_text().count("Login: user=<alice>")
        _, tagged = self.login("wn")
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
        self.assertEqual(before, self.A.log_text().count("Login: user=<alice>"))
        self.g.wait_log(lambda l: l.get("msg") == "back-end login failed" and "verify" in l.get("reason", ""),
                        what="certificate verification failure in the log")



class ConnectionLimitTest(unittest.TestCase):
    """limits.max_connections_per_ip: one address cannot take every slot; others still get in."""

    def setUp(self):
        self.g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                            "backends": [{"name": "A", "address": "127.0.0.11", "ports": {"imap": closed_port()}}],
                            "limits": {"max_connections_per_ip": 3}}, users=[user("alice", PW, "A")])
        self.addCleanup(self.g.cleanup)
        self.g.start()

    def greeted(self, source_ip=None):
        c = self.g.client("plain", source_ip=source_ip)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting().startswith(b"* OK"))
        return c

    def test_connections_per_ip_are_limited(self):
        clients = [self.greeted() for _ in range(3)]
        extra = self.g.client("plain")
        self.addCleanup(extra.close)
        # The fourth connection from 127.0.0.1 is told so instead of greeted, and closed.
        self.assertEqual(extra.read_until_eof(), [b"* BYE [UNAVAILABLE] Too many connections, try again later."])
        self.g.wait_log(lambda l: l.get("msg") == "connection refused", what="refusal logged")
        self.greeted(source_ip="127.0.0.2")  # another address still gets in
        clients[0].close()
        self.g.wait_log(lambda l: l.get("msg") == "session end" and l.get("outcome") != "connection_limit",
                        what="first session ended")
        self.greeted()  # the slot is free again


class StartTlsInjector(ScriptedServer):
    """A back-end (or a man in the middle) that says OK to STARTTLS and, in the same write, adds
    plaintext lines that would complete the login: a capability list and a tagged OK for LOGIN and
    AUTHENTICATE. Then it does a real TLS handshake and records what arrives inside TLS."""

    INJECTED = (b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\nC OK injected\r\n"
                b"L OK [CAPABILITY IMAP4rev1 INJECTED] injected login\r\n")

    def __init__(self, cert, key):
        self.cert, self.key = cert, key
        self.over_tls = []
        super().__init__()

    def serve(self, conn):
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
        tag = conn.makefile("rb").readline().split(b" ")[0]
        conn.sendall(tag + b" OK Begin TLS negotiation now.\r\n" + self.INJECTED)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        tls = ctx.wrap_socket(conn, server_side=True)
        for raw in tls.makefile("rb"):
            self.over_tls.append(raw)
            tls.sendall(raw.split(b" ")[0] + b" NO refused\r\n")


class BackendStartTlsInjectionTest(unittest.TestCase):
    def test_plaintext_behind_the_starttls_answer_fails_the_login(self):
        tmp = tempfile.mkdtemp(prefix="gh-inject-")
        cert, key = make_cert(tmp, cn="fake.example.test", names=("fake.example.test",))
        fake = StartTlsInjector(cert, key)
        self.addCleanup(fake.stop)
        backend = {"name": "F", "address": "127.0.0.1", "ports": {"imap": fake.port}, "tls": "starttls",
                   "ca_file": cert, "server_name": "fake.example.test"}
        g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                       "backends": [backend]}, users=[user("fay", PW, "F")])
        self.addCleanup(g.cleanup)
        g.start()
        c = g.client("plain")
        self.addCleanup(c.close)
        c.greeting()
        _, tagged = c.exchange(f"a LOGIN fay {PW}\r\n".encode(), "a")
        # Not the injected OK: a temporary failure, and no credentials were sent on.
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
        self.assertFalse([l for l in fake.over_tls if b"LOGIN" in l.upper() or b"AUTHENTICATE" in l.upper()],
                         fake.over_tls)


if __name__ == "__main__":
    unittest.main()
