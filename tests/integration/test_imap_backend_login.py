"""How Gatehouse logs in to IMAP back-ends that are not the Dovecot of the other tests: one that
forbids LOGIN (LOGINDISABLED), one that writes its keywords in lower case, one that says [ALERT]
for the user. A scripted back-end, because a real one cannot be made to show each of these on cue.
"""

import base64
import unittest

from harness import Gatehouse, ScriptedServer, listener, user


class FakeImap(ScriptedServer):
    """A scripted IMAP back-end. It greets with `greeting`, answers CAPABILITY with `capabilities`,
    ID with OK, LOGIN and AUTHENTICATE PLAIN (initial response or continuation) with `login_answer`
    ("{tag}" replaced by the command's tag). `commands` holds every line received (SASL responses
    included), in order."""

    def __init__(self, greeting, capabilities, login_answer):
        self.greeting = greeting
        self.capabilities = capabilities
        self.login_answer = login_answer
        self.commands = []
        super().__init__()

    def serve(self, conn):
        conn.sendall(self.greeting)
        pending_sasl_tag = None
        for raw in conn.makefile("rb"):
            line = raw.rstrip(b"\r\n").decode()
            self.commands.append(line)
            if pending_sasl_tag is not None:
                conn.sendall(self.login_answer.replace(b"{tag}", pending_sasl_tag))
                pending_sasl_tag = None
                continue
            tag, _, rest = line.partition(" ")
            verb = rest.split(" ")[0].upper()
            if verb == "CAPABILITY":
                conn.sendall(self.capabilities + tag.encode() + b" OK done\r\n")
            elif verb == "ID":
                conn.sendall(b"* ID NIL\r\n" + tag.encode() + b" OK ID done\r\n")
            elif verb == "LOGIN" or (verb == "AUTHENTICATE" and len(rest.split(" ")) == 3):
                conn.sendall(self.login_answer.replace(b"{tag}", tag.encode()))
            elif verb == "AUTHENTICATE":
                pending_sasl_tag = tag.encode()
                conn.sendall(b"+ \r\n")
            elif verb == "LOGOUT":
                conn.sendall(b"* BYE bye\r\n" + tag.encode() + b" OK done\r\n")
                return
            else:
                conn.sendall(tag.encode() + b" OK done\r\n")

    def verbs(self):
        return [c.partition(" ")[2].split(" ")[0].upper() for c in self.commands]


PLAIN_IR = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n"


class ImapBackendLoginTest(unittest.TestCase):
    def login(self, greeting, login_answer):
        """alice logs in through Gatehouse to a FakeImap; returns it and her (untagged, tagged) answer."""
        fake = FakeImap(greeting, b"", login_answer)
        self.addCleanup(fake.stop)
        g = Gatehouse({"listeners": [listener("imap", require_tls_for_auth=False)],
                       "backends": [{"name": "A", "address": "127.0.0.1", "ports": {"imap": fake.port}}]},
                      users=[user("alice", "alice-pass", "A")])
        self.addCleanup(g.cleanup)
        g.start()
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

    def test_alerts_reach_the_client_before_the_answer(self):
        _, (untagged, tagged) = self.login(
            PLAIN_IR, b"* OK [ALERT] Mailbox 95% full\r\n{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n")
        self.assertEqual(untagged, [b"* OK [ALERT] Mailbox 95% full"])
        self.assertTrue(tagged.startswith(b"a OK"), tagged)

    def test_alert_in_a_refusal_is_shown_and_the_answer_stays_generic(self):
        _, (untagged, tagged) = self.login(PLAIN_IR, b"{tag} NO [ALERT] Account locked: call the help desk\r\n")
        self.assertEqual(untagged, [b"* NO [ALERT] Account locked: call the help desk"])
        self.assertEqual(tagged, b"a NO [AUTHENTICATIONFAILED] Authentication failed.")


if __name__ == "__main__":
    unittest.main()
