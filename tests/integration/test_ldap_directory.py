"""End to end with the LDAP directory (issue 4): IMAP clients -> Gatehouse -> real slapd + Dovecot back-ends.

Back-end A (127.0.1.1) and B (127.0.1.2) are Dovecot instances whose users carry marker mailboxes "on-A" /
"on-B"; slapd (tests/integration/slapd.py) says who lives where: alice's mailHost is A's address, bob's is
B's name. Gatehouse runs without the authentication cache, so every login is a search and a bind.
"""

import json
import os
import re
import time
import unittest

import harness
from harness import Dovecot, Gatehouse, ImapClient, astring, listener, wait_for
from slapd import PEOPLE_DN, SERVICE_DN, SERVICE_PW, Slapd, person

A_IP, B_IP = "127.0.1.1", "127.0.1.2"
PASSWORDS = {"alice": "alice-pass", "bob": "bob-pass", "carol": "carol-pass", "dave": "dave-pass",
             "erin": "erin-pass", "frank": "frank-pass", "twin1": "twin-pass", "twin2": "twin-pass"}
WRONG_PW = "wrong-secret-5531"
AUTH_FAILED = b"NO [AUTHENTICATIONFAILED] Authentication failed."
# request_ms for the tests that wait on a timeout: short, yet far above a healthy slapd's answer time.
REQUEST_MS = 1000
# What a slow 2-core box may add to a deadline measured from the client.
MARGIN_S = 2.0
TIMEOUTS = {"connect_ms": 2000, "greeting_ms": 8000, "preauth_idle_ms": 30000, "session_idle_ms": 120000,
            "shutdown_grace_ms": 2000}

_LIST_RE = re.compile(rb'^\* LIST \([^)]*\) (?:"(?:[^"\\]|\\.)*"|NIL) (.+)$', re.I)


def entries():
    return [
        person("alice", PASSWORDS["alice"], A_IP),
        person("bob", PASSWORDS["bob"], "B"),
        person("carol", PASSWORDS["carol"], "A", protocols=["pop3", "submission"]),
        person("dave", PASSWORDS["dave"], "mail.elsewhere.example"),
        person("erin", PASSWORDS["erin"], "A", disabled=True),
        person("frank", PASSWORDS["frank"], "A"),
        person("twin1", PASSWORDS["twin1"], "A", mail="twin@example.com"),
        person("twin2", PASSWORDS["twin2"], "A", mail="twin@example.com"),
    ]


def mailbox_names(untagged):
    names = set()
    for line in untagged:
        m = _LIST_RE.match(line)
        if m:
            names.add(m.group(1).strip(b'"').decode("utf-8", "replace"))
    return names


def ldap_directory(ldap, **overrides):
    cfg = ldap.ldap_config(timeouts={"connect_ms": 1000, "request_ms": REQUEST_MS},
                           reconnect_backoff_ms={"min": 50, "max": 400})
    cfg.update(overrides)
    return {"type": "ldap", "ldap": cfg, "cache": {"enabled": False}}


class LdapTestCase(unittest.TestCase):
    @classmethod
    def start_backends(cls):
        users = dict(PASSWORDS)
        cls.A = Dovecot("A", A_IP, users, markers=["on-A"])
        cls.addClassCleanup(cls.A.stop)
        cls.A.start()
        cls.B = Dovecot("B", B_IP, users, markers=["on-B"])
        cls.addClassCleanup(cls.B.stop)
        cls.B.start()

    @classmethod
    def start_gatehouse(cls, directory):
        g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                       "backends": [cls.A.backend_config(), cls.B.backend_config()],
                       "timeouts": dict(TIMEOUTS), "directory": directory})
        cls.addClassCleanup(g.cleanup)
        g.start()
        return g

    def login(self, g, login, password):
        """A fresh connection and LOGIN; returns (client, tagged line). The client is closed at cleanup."""
        c = ImapClient(g.ports["plain"])
        self.addCleanup(c.close)
        c.greeting()
        _, tagged = c.command_parts("L1", [b"LOGIN ", astring(login), b" ", astring(password)])
        return c, tagged

    def assert_lands_on(self, g, login, marker):
        c, tagged = self.login(g, login, PASSWORDS[login])
        self.assertTrue(tagged.startswith(b"L1 OK"), tagged)
        untagged, _ = c.ok("lst", 'LIST "" "*"')
        names = mailbox_names(untagged)
        self.assertIn(marker, names, untagged)
        self.assertNotIn({"on-A": "on-B", "on-B": "on-A"}[marker], names, untagged)
        c.ok("out", "LOGOUT")

    def assert_no_password_logged(self, g):
        text = g.stderr_text()
        for pw in set(PASSWORDS.values()) | {WRONG_PW, SERVICE_PW}:
            self.assertNotIn(pw, text, "a password appears in Gatehouse's log")


class LdapDirectoryTest(LdapTestCase):
    """Tests sharing one slapd, two back-ends and one Gatehouse; none changes what another sees."""

    @classmethod
    def setUpClass(cls):
        cls.start_backends()
        cls.ldap = Slapd(entries())
        cls.addClassCleanup(cls.ldap.cleanup)
        cls.ldap.start()
        cls.g = cls.start_gatehouse(ldap_directory(cls.ldap))

    def tearDown(self):
        self.assert_no_password_logged(self.g)

    def test_alice_and_bob_are_routed_by_mail_host(self):
        self.assert_lands_on(self.g, "alice", "on-A")  # mailHost: A's address
        self.assert_lands_on(self.g, "bob", "on-B")    # mailHost: B's name
        ok = self.g.wait_log(lambda l: l.get("msg") == "ldap connected", what="ldap connected")
        self.assertEqual(ok.get("bind_dn"), "cn=gatehouse,ou=services,dc=example,dc=com")

    def test_threads_are_named_for_operators(self):
        # top -H, ps -L and perf show which thread burns CPU: each worker and the LDAP thread.
        task_dir = f"/proc/{self.g.proc.pid}/task"
        names = sorted(open(f"{task_dir}/{tid}/comm").read().strip() for tid in os.listdir(task_dir))
        self.assertIn("gh-ldap", names)
        workers = self.g.config["workers"]
        for index in range(workers):
            self.assertIn(f"gh-worker-{index}", names)

    def test_login_by_mail_address_presents_the_uid(self):
        since = self.A.log_size()
        c, tagged = self.login(self.g, "alice@example.com", PASSWORDS["alice"])
        self.assertTrue(tagged.startswith(b"L1 OK"), tagged)
        self.A.wait_log(r"Login: user=<alice>", since)

    def test_refusals_look_alike_and_reach_no_back_end(self):
        since_a, since_b = self.A.log_size(), self.B.log_size()
        attempts = [("alice", WRONG_PW), ("nobody-here", "x-pass"), ("twin@example.com", "twin-pass"),
                    ("alice", ""), ("alice", "   "), ("*", PASSWORDS["alice"]),
                    ("*)(uid=*", PASSWORDS["alice"]), ("alice)(uid=*", PASSWORDS["alice"]),
                    ("alice*", PASSWORDS["alice"]), ("EXAMPLE\\alice", PASSWORDS["alice"]),
                    ("al\\2aice", PASSWORDS["alice"]), ("erin", PASSWORDS["erin"])]
        for login, password in attempts:
            with self.subTest(login=login, password_len=len(password)):
                _, tagged = self.login(self.g, login, password)
                self.assertEqual(tagged, b"L1 " + AUTH_FAILED)
        # A barrier: alice's next login reaches A; everything refused before it would be logged by now.
        self.assert_lands_on(self.g, "alice", "on-A")
        self.A.wait_log(r"Login: user=<alice>", since_a)
        logins_a = re.findall(r"Login: user=<([^>]*)>", self.A.log_text(since_a))
        self.assertEqual(set(logins_a), {"alice"})
        self.assertNotIn("imap-login", self.B.log_text(since_b))
        for name in ("twin", "erin", "nobody-here"):
            self.assertNotIn(f"user=<{name}", self.A.log_text(since_a))
        # Whatever the session calls its refusal line, the directory's reason is in it.
        reasons = {l.get("reason") for l in self.g.log_lines() if "reason" in l}
        self.assertIn("login matches several directory entries", reasons)
        self.assertIn("account disabled", reasons)
        self.assertIn("empty password", reasons)
        self.assertIn("unknown user", reasons)

    def test_protocol_not_allowed_is_a_clear_refusal(self):
        since = self.A.log_size()
        _, tagged = self.login(self.g, "carol", PASSWORDS["carol"])
        self.assertTrue(tagged.startswith(b"L1 NO"), tagged)
        self.assertIn(b"disabled", tagged)
        self.assertNotEqual(tagged, b"L1 " + AUTH_FAILED)
        _, wrong = self.login(self.g, "carol", WRONG_PW)  # a wrong password does not learn that
        self.assertEqual(wrong, b"L1 " + AUTH_FAILED)
        self.assert_lands_on(self.g, "alice", "on-A")
        self.assertNotIn("user=<carol>", self.A.log_text(since))

    def test_unknown_mail_host_is_a_temporary_failure(self):
        _, tagged = self.login(self.g, "dave", PASSWORDS["dave"])
        self.assertTrue(tagged.startswith(b"L1 NO [UNAVAILABLE]"), tagged)
        line = self.g.wait_log(lambda l: l.get("msg") == "ldap entry cannot be routed", what="route log")
        self.assertIn("mail.elsewhere.example", line["reason"])
        self.assertIn("names no configured back-end", line["reason"])
        _, wrong = self.login(self.g, "dave", WRONG_PW)
        self.assertEqual(wrong, b"L1 " + AUTH_FAILED)

    def test_changing_mail_host_moves_the_next_login(self):
        self.assert_lands_on(self.g, "frank", "on-A")
        self.ldap.modify(f"""
            dn: uid=frank,{PEOPLE_DN}
            changetype: modify
            replace: mailHost
            mailHost: {B_IP}
            """)
        self.assert_lands_on(self.g, "frank", "on-B")
        self.ldap.modify(f"""
            dn: uid=frank,{PEOPLE_DN}
            changetype: modify
            replace: mailHost
            mailHost: A
            """)
        self.assert_lands_on(self.g, "frank", "on-A")

    def test_parallel_logins(self):
        clients = []
        for i in range(12):
            c = ImapClient(self.g.ports["plain"])
            self.addCleanup(c.close)
            c.greeting()
            name = ("alice", "bob")[i % 2]
            c.send(f"L{i} LOGIN {name} {PASSWORDS[name]}\r\n")
            clients.append((c, i))
        for c, i in clients:
            _, tagged = c.read_until_tagged(f"L{i}")
            self.assertTrue(tagged.startswith(f"L{i} OK".encode()), tagged)


class LdapOutageTest(LdapTestCase):
    """Each test has its own slapd (or two) and Gatehouse: they stop, pause and restart servers."""

    @classmethod
    def setUpClass(cls):
        cls.start_backends()

    def new_slapd(self, data=None):
        s = Slapd(data if data is not None else entries())
        self.addCleanup(s.cleanup)
        return s.start()

    def new_gatehouse(self, directory):
        g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                       "backends": [self.A.backend_config(), self.B.backend_config()],
                       "timeouts": dict(TIMEOUTS), "directory": directory})
        self.addCleanup(g.cleanup)
        g.start()
        self.addCleanup(self.assert_no_password_logged, g)
        return g

    def login_status(self, g, login):
        """The tagged answer to a LOGIN with the right password, without its tag."""
        _, tagged = self.login(g, login, PASSWORDS[login])
        return tagged.split(b" ", 1)[1]

    def test_stopped_slapd_is_a_temporary_failure_and_reconnects(self):
        ldap = self.new_slapd()
        g = self.new_gatehouse(ldap_directory(ldap))
        self.assert_lands_on(g, "alice", "on-A")
        ldap.stop()
        started = time.monotonic()
        self.assertTrue(self.login_status(g, "bob").startswith(b"NO [UNAVAILABLE]"))
        self.assertLess(time.monotonic() - started, REQUEST_MS / 1000 + MARGIN_S)
        self.assertTrue(self.login_status(g, "alice").startswith(b"NO [UNAVAILABLE]"))
        ldap.start()
        wait_for(lambda: self.login_status(g, "bob").startswith(b"OK"), 15, "logins after slapd restart")
        self.assert_lands_on(g, "alice", "on-A")

    def test_size_limit_below_two_is_a_temporary_failure(self):
        # The server stops the search at one entry, so "exactly one matches" cannot be known: the
        # login whose mail two entries share must not take the first of them.
        ldap = Slapd(entries(), database_conf=f'limits dn.exact="{SERVICE_DN}" size=1')
        self.addCleanup(ldap.cleanup)
        ldap.start()
        g = self.new_gatehouse(ldap_directory(ldap))
        since = self.A.log_size()
        _, tagged = self.login(g, "twin@example.com", PASSWORDS["twin1"])
        self.assertTrue(tagged.startswith(b"L1 NO [UNAVAILABLE]"), tagged)
        g.wait_log(lambda l: l.get("msg") == "ldap size limit below 2: a login cannot be proven unique",
                   what="size limit log")
        self.assert_lands_on(g, "alice", "on-A")  # a unique login still works
        self.A.wait_log(r"Login: user=<alice>", since)
        self.assertNotIn("user=<twin", self.A.log_text(since))

    def test_an_idle_connection_closed_by_slapd_is_reopened_without_refusing_logins(self):
        # slapd's idletimeout closes the idle search connection: not an outage. It used to put the
        # directory into its reconnect backoff, refusing every login in it with NO [UNAVAILABLE].
        ldap = Slapd(entries(), global_conf="idletimeout 1")
        self.addCleanup(ldap.cleanup)
        ldap.start()
        g = self.new_gatehouse(ldap_directory(ldap, reconnect_backoff_ms={"min": 5000, "max": 5000}))
        self.assert_lands_on(g, "alice", "on-A")
        # slapd checks idle connections every few seconds; Gatehouse logs the close when it sees it.
        g.wait_log(lambda l: l.get("msg", "").startswith("ldap search connection"), timeout=30,
                   what="the idle close")
        self.assert_lands_on(g, "bob", "on-B")

    def test_slapd_down_at_start_is_a_temporary_failure(self):
        ldap = Slapd(entries())
        self.addCleanup(ldap.cleanup)
        ldap.port = harness.free_port()  # nothing listens there yet
        g = self.new_gatehouse(ldap_directory(ldap))
        self.assertTrue(self.login_status(g, "alice").startswith(b"NO [UNAVAILABLE]"))
        ldap.start()
        wait_for(lambda: self.login_status(g, "alice").startswith(b"OK"), 15, "logins once slapd is up")

    def test_second_uri_takes_over_when_the_first_is_down(self):
        first = self.new_slapd()
        # The second server says bob lives on A: a login landing there proves who answered.
        second = self.new_slapd([e.replace("mailHost: B", "mailHost: A") for e in entries()])
        g = self.new_gatehouse(ldap_directory(first, uris=[first.uri, second.uri]))
        self.assert_lands_on(g, "bob", "on-B")
        first.stop()
        wait_for(lambda: self.login_status(g, "bob").startswith(b"OK"), 15, "failover to the second URI")
        self.assert_lands_on(g, "bob", "on-A")
        self.assert_lands_on(g, "alice", "on-A")

    def test_first_uri_down_from_the_start(self):
        first = Slapd(entries())
        self.addCleanup(first.cleanup)
        first.port = harness.free_port()
        second = self.new_slapd()
        g = self.new_gatehouse(ldap_directory(second, uris=[first.uri, second.uri]))
        self.assert_lands_on(g, "bob", "on-B")
        self.assert_lands_on(g, "alice", "on-A")

    def test_paused_slapd_answers_temp_fail_within_request_timeout(self):
        ldap = self.new_slapd()
        g = self.new_gatehouse(ldap_directory(ldap))
        self.assert_lands_on(g, "alice", "on-A")
        ldap.pause()
        try:
            started = time.monotonic()
            status = self.login_status(g, "alice")
            elapsed = time.monotonic() - started
            self.assertTrue(status.startswith(b"NO [UNAVAILABLE]"), status)
            self.assertLess(elapsed, REQUEST_MS / 1000 + MARGIN_S)
        finally:
            ldap.resume()
        wait_for(lambda: self.login_status(g, "bob").startswith(b"OK"), 15, "logins after SIGCONT")
        self.assert_lands_on(g, "bob", "on-B")

    def test_shutdown_with_a_login_waiting_on_a_paused_slapd_is_clean(self):
        ldap = self.new_slapd()
        g = self.new_gatehouse(ldap_directory(ldap, timeouts={"connect_ms": 1000, "request_ms": 30000}))
        self.assert_lands_on(g, "alice", "on-A")
        ldap.pause()
        self.addCleanup(ldap.resume)
        c = ImapClient(g.ports["plain"])
        self.addCleanup(c.close)
        c.greeting()
        c.send(f"L1 LOGIN bob {PASSWORDS['bob']}\r\n")
        # Whether the LOGIN already reached the LDAP thread or not, the exit must be clean.
        # Gatehouse.stop() requires exit code 0: every loop, the LDAP one included, closed cleanly.
        self.assertEqual(g.stop(), 0)

    def test_paused_first_server_fails_over_to_the_second(self):
        first = self.new_slapd()
        second = self.new_slapd()
        g = self.new_gatehouse(ldap_directory(first, uris=[first.uri, second.uri]))
        self.assert_lands_on(g, "alice", "on-A")
        first.pause()
        self.addCleanup(first.resume)
        # The first login waits for the stalled server and fails; the next ones go to the second.
        wait_for(lambda: self.login_status(g, "bob").startswith(b"OK"), 15, "failover from a paused server")
        self.assert_lands_on(g, "alice", "on-A")


    def test_after_a_failover_password_checks_follow_the_search(self):
        """The pooled bind connections follow the search connection to the next server: the first
        login after the failover does not send its password check to the stalled server."""
        first = self.new_slapd()
        second = self.new_slapd()
        g = self.new_gatehouse(ldap_directory(first, uris=[first.uri, second.uri]))
        self.assert_lands_on(g, "alice", "on-A")  # a bind connection to the first server is pooled
        first.pause()
        self.addCleanup(first.resume)
        status = self.login_status(g, "bob")  # its search waits for the stalled server
        self.assertTrue(status.startswith(b"NO [UNAVAILABLE]"), status)
        g.wait_log(lambda l: l.get("msg") == "ldap connected" and l.get("uri") == second.uri,
                   what="the search connection on the second server")
        self.assert_lands_on(g, "bob", "on-B")
        self.assert_lands_on(g, "alice", "on-A")


class LdapTlsTest(LdapTestCase):
    """StartTLS and ldaps:// with the server's certificate verified against the configured CA."""

    @classmethod
    def setUpClass(cls):
        cls.start_backends()
        cls.ldap = Slapd(entries(), tls=True)
        cls.addClassCleanup(cls.ldap.cleanup)
        cls.ldap.start()
        cls.other_ca, _ = harness.make_cert(cls.ldap.root, cn="other-ca.example.test",
                                            names=("other-ca.example.test",), ips=("127.0.0.1",))

    def new_gatehouse(self, **ldap):
        g = Gatehouse({"listeners": [listener("plain", tls="none", require_tls_for_auth=False)],
                       "backends": [self.A.backend_config(), self.B.backend_config()],
                       "timeouts": dict(TIMEOUTS), "directory": ldap_directory(self.ldap, **ldap)})
        self.addCleanup(g.cleanup)
        g.start()
        return g

    def test_starttls_verified(self):
        g = self.new_gatehouse(starttls=True, ca_file=self.ldap.cert)
        self.assert_lands_on(g, "alice", "on-A")
        self.assert_lands_on(g, "bob", "on-B")
        _, wrong = self.login(g, "alice", WRONG_PW)
        self.assertEqual(wrong, b"L1 " + AUTH_FAILED)

    def test_ldaps_verified(self):
        g = self.new_gatehouse(uris=[self.ldap.ldaps_uri], ca_file=self.ldap.cert)
        self.assert_lands_on(g, "alice", "on-A")

    def test_ldaps_server_that_stalls_its_handshake_is_given_up(self):
        """A server that takes the TCP connection and never answers the TLS handshake (hung, SIGSTOPped
        behind a listening socket): libldap's handshake alone would wait for ever, holding the LDAP thread.
        The connect step is bounded, so the second URI takes over."""
        stalled = harness.FakeBackend("silent")
        self.addCleanup(stalled.stop)
        g = self.new_gatehouse(uris=[f"ldaps://127.0.0.1:{stalled.port}", self.ldap.ldaps_uri],
                               ca_file=self.ldap.cert)

        def alice_logs_in():
            c, tagged = self.login(g, "alice", PASSWORDS["alice"])
            c.close()
            return tagged.startswith(b"L1 OK")
        # The logins that wait for the stalled server get a temporary failure, the next ones go on.
        wait_for(alice_logs_in, 15, "logins past the stalled ldaps:// server")
        self.assertGreaterEqual(stalled.connections, 1)
        self.assert_lands_on(g, "alice", "on-A")
        g.wait_log(lambda l: "no answer within" in json.dumps(l), what="the watchdog's log line")

    def test_untrusted_certificate_is_a_temporary_failure(self):
        for ldap in ({"uris": [self.ldap.ldaps_uri]}, {"starttls": True}):
            with self.subTest(**ldap):
                g = self.new_gatehouse(ca_file=self.other_ca, **ldap)
                _, tagged = self.login(g, "alice", PASSWORDS["alice"])
                self.assertTrue(tagged.startswith(b"L1 NO [UNAVAILABLE]"), tagged)
                g.wait_log(lambda l: l.get("msg") == "ldap connect failed", what="connect failure")


if __name__ == "__main__":
    unittest.main()
