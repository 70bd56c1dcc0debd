"""The static directory's crypt(3) hashes are checked off the worker's loop: a login whose hash costs
seconds (SHA-512-crypt with millions of rounds, bcrypt with a high cost) does not stall the other
sessions of the worker that took it. Scripted back-ends, so that what Gatehouse connects to, and when,
can be seen at the socket.
"""

import select
import socket
import unittest

from harness import IO_TIMEOUT, FakeImap, Gatehouse, listener, ssha

PLAIN_IR = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n"
# SHA-512-crypt of "slow-pass" with 4 000 000 rounds: one check costs one to two seconds here.
SLOW_HASH = ("$6$rounds=4000000$gatehouseslow$cr3c.hUzSq2mjDuAHha.fxEdlBWVAVTHjVzvC65ZWGk24uGrbVi98BFL"
             "px2GI0Ju3Xstj9IeV/ZKUxD.cYCmq.")


class SlowHashTest(unittest.TestCase):
    def start(self, slow_backend_port, directory_extra=None):
        """One worker; alice (salted SHA) lives on a FakeImap, slow (SLOW_HASH) on slow_backend_port."""
        alice_home = FakeImap(PLAIN_IR, b"", b"{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
        self.addCleanup(alice_home.stop)
        directory = {"type": "static", "users": [
            {"login": "alice", "password": ssha("alice-pass"), "backend": "A"},
            {"login": "slow", "password": SLOW_HASH, "backend": "S"}]}
        directory.update(directory_extra or {})
        g = Gatehouse({"listeners": [listener("imap", require_tls_for_auth=False)],
                       "backends": [alice_home.backend_config("A"),
                                    {"name": "S", "address": "127.0.0.1", "ports": {"imap": slow_backend_port}}],
                       "directory": directory}, workers=1)
        self.addCleanup(g.cleanup)
        g.start()
        return g

    def client(self, g):
        c = g.client("imap")
        self.addCleanup(c.close)
        c.greeting()
        return c

    def test_a_costly_hash_does_not_stall_the_worker(self):
        # The slow user's home: a socket that listens and never accepts, so the test sees the moment
        # Gatehouse connects there, which is the moment the hash check has finished.
        home = socket.socket()
        self.addCleanup(home.close)
        home.bind(("127.0.0.1", 0))
        home.listen(4)
        g = self.start(home.getsockname()[1])
        alice = self.client(g)
        _, tagged = alice.exchange(b"a LOGIN alice alice-pass\r\n", "a")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)

        slow = self.client(g)
        slow.send(b"s LOGIN slow slow-pass\r\n")
        # Alice's NOOP goes to her back-end and back through the one worker while slow's hash runs.
        # Had the worker run the hash itself, it would have read her NOOP only once the hash was done,
        # and connected to slow's home (in the loop turn before) ahead of relaying her answer.
        _, tagged = alice.exchange(b"n NOOP\r\n", "n")
        self.assertEqual(tagged, b"n OK done")
        pending, _, _ = select.select([home], [], [], 0)
        self.assertEqual(pending, [], "the worker waited for the hash check before relaying alice's NOOP")
        # The check does finish, with the right answer: Gatehouse connects to slow's home.
        home.settimeout(IO_TIMEOUT)
        conn, _ = home.accept()
        conn.close()

    def test_a_full_queue_is_a_temporary_failure(self):
        home = FakeImap(PLAIN_IR, b"", b"{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
        self.addCleanup(home.stop)
        # Without the cache, whose coalescing would make the three logins one check.
        g = self.start(home.port, {"hash_threads": 1, "hash_queue": 1, "cache": {"enabled": False}})
        clients = [self.client(g) for _ in range(3)]
        for i, c in enumerate(clients):
            c.send(f"s{i} LOGIN slow slow-pass\r\n".encode())
        # One check runs, one waits; the thread cannot finish a check in the time three LOGINs take to
        # arrive, so at least one of them found the queue full.
        answers = [c.read_until_tagged(f"s{i}")[1] for i, c in enumerate(clients)]
        unavailable = [a for a in answers if b"NO [UNAVAILABLE]" in a]
        self.assertGreaterEqual(len(unavailable), 1, answers)
        self.assertGreaterEqual(len([a for a in answers if b" OK " in a]), 1, answers)  # the one that ran
        log = g.wait_log(lambda l: "hash_queue" in l.get("reason", ""), what="queue-full log line")
        self.assertIn("password checks busy", log["reason"])


if __name__ == "__main__":
    unittest.main()
