"""Gatehouse behind a load balancer that sends the PROXY protocol: real HAProxy in front, real Dovecot behind.

A site runs several Gatehouse instances behind an ordinary TCP load balancer. Without the PROXY protocol
every connection would seem to come from the balancer: the back-ends would log its address, and the
per-address connection limit would throttle everyone at once. Here HAProxy (TCP mode) sends version 1 to
the plain IMAP listener and version 2 to the IMAPS and POP3 listeners; the client connects to HAProxy from
127.0.0.72, and that address must reach Dovecot's log, Gatehouse's log and the connection limit. A
listener with `proxy_protocol_from` takes connections only from the balancers named there, each starting
with a header; anything else is closed without a word.
"""

import socket
import ssl
import struct
import unittest

from harness import (IO_TIMEOUT, Dovecot, Gatehouse, HAProxy, ImapClient, LineClient, client_tls_context,
                     listener, user, wait_for)

PW = "alice-lb-pass"
# One client address per test: with max_connections_per_ip 1, a session of the test before may still hold
# its address's slot for a moment after its close.
CLIENT_IP = "127.0.0.72"
TLS_CLIENT_IP = "127.0.0.78"
POP3_CLIENT_IP = "127.0.0.79"
LIMITED_CLIENT_IP = "127.0.0.76"
OTHER_CLIENT_IP = "127.0.0.77"
HEADER_TIMEOUT_MS = 1500
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(command=1, source=None, destination=("127.0.0.1", 993)):
    """A PROXY protocol v2 header: PROXY (1) over TCP/IPv4, or LOCAL (0) without addresses."""
    if command == 0:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    body = (socket.inet_aton(source[0]) + socket.inet_aton(destination[0]) +
            struct.pack("!HH", source[1], destination[1]))
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


class ProxyProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.A = Dovecot("A", "127.0.0.71", {"alice": PW}, markers=["on-A"])
        cls.addClassCleanup(cls.A.stop)
        cls.A.start()
        behind = {"proxy_protocol_from": ["127.0.0.1/32"]}
        cls.g = Gatehouse({"listeners": [dict(listener("imap", require_tls_for_auth=False), **behind),
                                         dict(listener("imaps", tls="implicit"), **behind),
                                         dict(listener("pop3", protocol="pop3"), **behind)],
                           "backends": [cls.A.backend_config()],
                           "limits": {"max_connections_per_ip": 1},
                           "timeouts": {"proxy_header_ms": HEADER_TIMEOUT_MS}},
                          users=[user("alice", PW, "A", protocols=["imap", "pop3"])])
        cls.addClassCleanup(cls.g.cleanup)
        cls.g.start()
        cls.lb = HAProxy({"imap": (cls.g.ports["imap"], "send-proxy"),
                          "imaps": (cls.g.ports["imaps"], "send-proxy-v2"),
                          "pop3": (cls.g.ports["pop3"], "send-proxy-v2")})
        cls.addClassCleanup(cls.lb.stop)

    def new_log(self, since, predicate, what):
        """The first of Gatehouse's log lines after the first `since` for which predicate(line) holds."""
        return wait_for(lambda: next((l for l in self.g.log_lines()[since:] if predicate(l)), None), IO_TIMEOUT,
                        f"gatehouse log: {what}")

    def session_end(self, client_ip, since, user=""):
        """The log line of the session that ended for `client_ip` (and `user`), among lines after `since`."""
        return self.new_log(since, lambda l: l.get("msg") == "session end" and l.get("user") == user and
                            l.get("client", "").startswith(client_ip + ":"), f"session end of {client_ip}")

    def log_index(self):
        return len(self.g.log_lines())

    def test_v1_plain_imap_reaches_dovecot_with_the_real_client_address(self):
        since, dovecot_since = self.log_index(), self.A.log_size()
        with ImapClient(self.lb.ports["imap"], source_ip=CLIENT_IP) as c:
            self.assertTrue(c.greeting().startswith(b"* OK"))
            c.ok("l", f'LOGIN alice "{PW}"')
            c.ok("s", "SELECT on-A")
            c.ok("o", "LOGOUT")
        self.A.wait_log(r"imap-login: Info: Login: user=<alice>, [^\n]*rip=127\.0\.0\.72\b", dovecot_since)
        end = self.session_end(CLIENT_IP, since, user="alice")
        self.assertEqual(end["outcome"], "logout")

    def test_v2_implicit_tls_through_the_balancer(self):
        since, dovecot_since = self.log_index(), self.A.log_size()
        with ImapClient(self.lb.ports["imaps"], source_ip=TLS_CLIENT_IP, tls=client_tls_context(),
                        server_hostname="mail.example.test") as c:
            self.assertTrue(c.greeting().startswith(b"* OK"))
            c.ok("l", f'LOGIN alice "{PW}"')
            c.ok("o", "LOGOUT")
        self.A.wait_log(r"imap-login: Info: Login: user=<alice>, [^\n]*rip=127\.0\.0\.78\b", dovecot_since)
        self.assertTrue(self.session_end(TLS_CLIENT_IP, since, user="alice")["tls"])

    def test_v2_pop3_reaches_dovecot_with_the_real_client_address(self):
        dovecot_since = self.A.log_size()
        with LineClient(self.lb.ports["pop3"], source_ip=POP3_CLIENT_IP) as c:
            self.assertTrue(c.read_line().startswith(b"+OK"))
            c.send(b"USER alice\r\n")
            self.assertTrue(c.read_line().startswith(b"+OK"))
            c.send(f"PASS {PW}\r\n".encode())
            self.assertTrue(c.read_line().startswith(b"+OK"), "POP3 login through the balancer failed")
            c.send(b"QUIT\r\n")
            self.assertTrue(c.read_line().startswith(b"+OK"))
        self.A.wait_log(r"pop3-login: Info: Login: user=<alice>, [^\n]*rip=127\.0\.0\.79\b", dovecot_since)

    def test_the_connection_limit_counts_real_clients_not_the_balancer(self):
        # max_connections_per_ip is 1 and every connection comes from HAProxy's 127.0.0.1.
        with ImapClient(self.lb.ports["imap"], source_ip=LIMITED_CLIENT_IP) as first, \
                ImapClient(self.lb.ports["imap"], source_ip=OTHER_CLIENT_IP) as other:
            self.assertTrue(first.greeting().startswith(b"* OK"))
            self.assertTrue(other.greeting().startswith(b"* OK"), "a second client was refused")
            with ImapClient(self.lb.ports["imap"], source_ip=LIMITED_CLIENT_IP) as again:
                bye = again.read_line()
                self.assertTrue(bye.startswith(b"* BYE"), bye)
                self.assertIn(b"connections", bye)

    def test_connections_not_from_a_balancer_are_closed_without_a_word(self):
        since = self.log_index()
        with socket.create_connection(("127.0.0.1", self.g.ports["imap"]), timeout=IO_TIMEOUT,
                                      source_address=(CLIENT_IP, 0)) as s:
            self.assertEqual(s.recv(100), b"")  # no greeting: closed at once
        refused = self.new_log(since, lambda l: l.get("msg") == "connection refused", "refusal")
        self.assertEqual(refused["reason"], "not from a configured load balancer")
        self.assertTrue(refused["client"].startswith(CLIENT_IP + ":"))

    def test_a_header_that_is_not_one_closes_without_a_word(self):
        since = self.log_index()
        with socket.create_connection(("127.0.0.1", self.g.ports["imap"]), timeout=IO_TIMEOUT) as s:
            s.sendall(b"a1 CAPABILITY\r\n")  # a client that reached the port around the balancer
            self.assertEqual(s.recv(100), b"")
        bad = self.new_log(since, lambda l: l.get("msg") == "bad PROXY protocol header", "bad header")
        self.assertTrue(bad["error"])
        self.new_log(since, lambda l: l.get("msg") == "session end" and l.get("outcome") == "bad_proxy_header",
                     "session end (bad_proxy_header)")

    def test_a_missing_header_times_out_without_a_word(self):
        since = self.log_index()
        with socket.create_connection(("127.0.0.1", self.g.ports["imap"]), timeout=IO_TIMEOUT) as s:
            self.assertEqual(s.recv(100), b"")  # after proxy_header_ms, with nothing said
        end = self.new_log(since, lambda l: l.get("msg") == "session end" and
                           l.get("outcome") == "proxy_header_timeout", "session end (proxy_header_timeout)")
        self.assertGreaterEqual(end["duration_ms"], HEADER_TIMEOUT_MS)

    def test_commands_in_the_same_write_as_the_header_are_answered(self):
        header = b"PROXY TCP4 127.0.0.74 127.0.0.1 40001 143\r\n"
        with LineClient(self.g.ports["imap"]) as c:
            c.send(header + b"a1 CAPABILITY\r\na2 NOOP\r\n")
            self.assertTrue(c.read_line().startswith(b"* OK"))
            self.assertTrue(c.read_line().startswith(b"* CAPABILITY"))
            self.assertTrue(c.read_line().startswith(b"a1 OK"))
            self.assertTrue(c.read_line().startswith(b"a2 OK"))

    def test_a_client_hello_in_the_same_write_as_the_header(self):
        since = self.log_index()
        # An SSLObject pumped by hand, so that the header and the ClientHello leave in one write.
        to_server, from_server = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_tls_context().wrap_bio(from_server, to_server, server_hostname="mail.example.test")
        with socket.create_connection(("127.0.0.1", self.g.ports["imaps"]), timeout=IO_TIMEOUT) as s:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            s.sendall(v2_header(source=("127.0.0.75", 40002)) + to_server.read())
            greeting = b""
            for _ in range(50):  # bounded: a handshake is a few flights
                data = s.recv(65536)
                self.assertTrue(data, "closed during the handshake")
                from_server.write(data)
                try:
                    if not greeting:
                        tls.do_handshake()
                    greeting += tls.read(4096)
                except ssl.SSLWantReadError:
                    pass
                if to_server.pending:
                    s.sendall(to_server.read())
                if greeting.endswith(b"\r\n"):
                    break
            self.assertTrue(greeting.startswith(b"* OK"), greeting)
        self.session_end("127.0.0.75", since)

    def test_a_local_header_is_the_balancer_itself(self):
        since = self.log_index()
        with LineClient(self.g.ports["imap"]) as c:
            c.send(v2_header(command=0))  # a health check
            self.assertTrue(c.read_line().startswith(b"* OK"))
        end = self.session_end("127.0.0.1", since)
        self.assertEqual(end["outcome"], "client_closed")


if __name__ == "__main__":
    unittest.main()
