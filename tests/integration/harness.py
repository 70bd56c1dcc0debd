"""Integration-test harness: real Dovecot back-ends, a Gatehouse process, fake peers and IMAP clients.

Standard library only. Every process is started in its own session and stopped by its pid (or its own
process group) in a cleanup, also when a test fails; every wait has a deadline; nothing synchronises by
sleeping. Ports are ephemeral: Dovecot gets a port found free by binding port 0 on its IP, Gatehouse is
configured with port 0 and reports the real port in its "listening" log line.
"""

import atexit
import base64
import copy
import hashlib
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Long enough for a loaded 2-core CI box, short enough that a hung peer fails the test quickly.
START_TIMEOUT = 15.0
IO_TIMEOUT = 10.0

# ---------------------------------------------------------------------------------------------------
# process bookkeeping: whatever is still running when the interpreter exits is killed by pid


_live = {}  # id(obj) -> obj with a kill() method
_live_lock = threading.Lock()


def _register(obj):
    with _live_lock:
        _live[id(obj)] = obj


def _unregister(obj):
    with _live_lock:
        _live.pop(id(obj), None)


@atexit.register
def _kill_leftovers():
    with _live_lock:
        objs = list(_live.values())
    for obj in objs:
        try:
            obj.kill()
        except Exception:  # best effort at exit
            pass


def _sigterm_to_exit(signum, frame):
    raise SystemExit(128 + signum)


# A test run killed with SIGTERM (ctest timeout, Ctrl-C on a wrapper) still runs the atexit clean-up.
if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _sigterm_to_exit)


def wait_for(predicate, timeout, what, interval=0.02):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes (TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)  # polling interval of a bounded wait, not a synchronisation


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(proc, pgid, sig, timeout):
    """Sends sig to proc, waits for it, then for the rest of its process group; SIGKILLs what is left."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    try:
        wait_for(lambda: not _group_alive(pgid), timeout, f"process group {pgid} to exit")
    except TimeoutError:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not _group_alive(pgid), timeout, f"process group {pgid} to die")


# ---------------------------------------------------------------------------------------------------
# small utilities


def free_port(ip="127.0.0.1"):
    """A TCP port that was free on ip a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def closed_port(ip="127.0.0.1"):
    """A port on which nothing listens: connecting to it is refused."""
    return free_port(ip)


def ssha(password, salt=None):
    """{SSHA} hash as `slappasswd -h {SSHA}` and `doveadm pw -s SSHA` write it."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha1(password + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def make_cert(directory, cn="mail.example.test", names=("mail.example.test", "other.example.test"), ips=()):
    """Self-signed P-256 certificate (usable as its own CA) via the openssl CLI; returns (cert, key) paths."""
    cert = os.path.join(directory, f"{cn}.crt")
    key = os.path.join(directory, f"{cn}.key")
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{ip}" for ip in ips])
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}", "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    os.chmod(key, 0o600)
    return cert, key


def client_tls_context(alpn=None, verify_cert=None):
    """TLS client context: no verification, or verification against verify_cert (a self-signed cert)."""
    if verify_cert:
        ctx = ssl.create_default_context(cafile=verify_cert)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def imap_quote(value):
    """An IMAP quoted string for 7-bit text (quotes and backslashes escaped)."""
    if isinstance(value, bytes):
        value = value.decode("ascii")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Literal:
    """A literal argument for ImapClient.command_parts()."""

    def __init__(self, data):
        self.data = data.encode("utf-8") if isinstance(data, str) else data


def astring(value):
    """A quoted string if value is printable 7-bit (no NUL/CR/LF), else a Literal."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if all(32 <= b < 127 for b in raw):
        return imap_quote(raw.decode("ascii")).encode("ascii")
    return Literal(raw)


def plain_sasl(login, password, authzid=""):
    raw = b"\0".join(x.encode("utf-8") if isinstance(x, str) else x for x in (authzid, login, password))
    return base64.b64encode(raw).decode("ascii")


def make_message(subject, body="Hello.\r\n", sender="harness@example.test", to="user@example.test"):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
            f"\r\n{body}").encode("utf-8")


# ---------------------------------------------------------------------------------------------------
# IMAP client over a plain or TLS socket


class ImapError(AssertionError):
    pass


_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\+?\}$")


class LineClient:
    """A raw socket client with a read buffer and deadlines: the plumbing of the protocol clients.

    Every read has a deadline (TimeoutError), the peer's close or reset is EOFError, and
    upgrade_tls() refuses bytes the server sent in plaintext after its "go ahead".
    """

    PROTOCOL = "line"

    def __init__(self, port, host="127.0.0.1", tls=None, server_hostname=None, source_ip=None,
                 timeout=IO_TIMEOUT):
        self.timeout = timeout
        self.buf = bytearray()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if source_ip:
                sock.bind((source_ip, 0))
            sock.settimeout(timeout)
            sock.connect((host, port))
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=server_hostname)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{self.PROTOCOL} read timed out; buffered: {bytes(self.buf[:300])!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError(f"{self.PROTOCOL} read timed out; buffered: {bytes(self.buf[:300])!r}") from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            raise EOFError(f"connection closed; buffered: {bytes(self.buf[:300])!r}")
        self.buf += chunk

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill(deadline)

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until_eof(self, timeout=None):
        """Reads every line until the peer closes; returns the lines (TimeoutError if it never closes)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            try:
                lines.append(self.read_line(max(0.01, deadline - time.monotonic())))
            except EOFError:
                if self.buf:
                    lines.append(bytes(self.buf))
                    self.buf.clear()
                return lines

    def upgrade_tls(self, ctx, server_hostname):
        """After the server's STARTTLS/STLS go-ahead: nothing may have come after it in plaintext."""
        if self.buf:
            raise AssertionError(f"plaintext bytes after the {self.PROTOCOL} TLS go-ahead: {bytes(self.buf)!r}")
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ImapClient(LineClient):
    """A line/literal-aware IMAP client on a raw socket, with a read buffer, deadlines and STARTTLS.

    Responses are returned as bytes without the final CRLF; a response with literals includes them inline
    (line + CRLF + literal bytes + rest), and read_response() also returns the literals separately.
    """

    PROTOCOL = "IMAP"

    def read_response(self, timeout=None):
        """One response (untagged, tagged or continuation) with its literals: (bytes, [literal, ...])."""
        timeout = timeout or self.timeout
        parts, literals = [], []
        while True:
            line = self.read_line(timeout)
            parts.append(line)
            m = _LITERAL_AT_END.search(line)
            if not m:
                break
            literal = self.read_exact(int(m.group(1)), timeout)
            literals.append(literal)
            parts.append(literal)
        return b"\r\n".join(parts), literals

    def read_until_tagged(self, tag, timeout=None):
        """Reads responses until the one tagged `tag`; returns (untagged responses, tagged line)."""
        tag = tag.encode() if isinstance(tag, str) else tag
        deadline = time.monotonic() + (timeout or self.timeout)
        untagged = []
        while True:
            resp, _ = self.read_response(max(0.01, deadline - time.monotonic()))
            if resp.startswith(tag + b" "):
                return untagged, resp
            untagged.append(resp)

    def read_tagged_any(self, timeout=None):
        """Reads until the first tagged (not `*`, not `+`) response; returns (untagged, tagged line)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        untagged = []
        while True:
            resp, _ = self.read_response(max(0.01, deadline - time.monotonic()))
            if resp.startswith(b"* ") or resp.startswith(b"+"):
                untagged.append(resp)
                continue
            return untagged, resp

    def command(self, tag, text, timeout=None):
        """Sends `tag text` CRLF, returns (untagged responses, tagged line)."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.read_until_tagged(tag, timeout)

    def exchange(self, data, tag, timeout=None):
        """imap_exchange: writes raw bytes, reads until the response tagged `tag`."""
        self.send(data)
        return self.read_until_tagged(tag, timeout)

    def ok(self, tag, text, timeout=None):
        untagged, tagged = self.command(tag, text, timeout)
        if not tagged.startswith(tag.encode() + b" OK"):
            raise ImapError(f"{tag} {text!r} -> {tagged!r} (untagged {untagged!r})")
        return untagged, tagged

    def greeting(self, timeout=None):
        line = self.read_line(timeout)
        if not line.startswith(b"* OK"):
            raise ImapError(f"bad greeting {line!r}")
        return line

    def login(self, user, password, tag="L1", literal_plus=False):
        """LOGIN with quoted strings for 7-bit values, literals for the others; returns the tagged line."""
        untagged, tagged = self.command_parts(tag, [b"LOGIN ", astring(user), b" ", astring(password)],
                                              literal_plus)
        if not tagged.startswith(tag.encode() + b" OK"):
            raise ImapError(f"LOGIN {user!r} -> {tagged!r}")
        return untagged, tagged

    def command_parts(self, tag, parts, literal_plus=False, timeout=None):
        """Sends a command made of bytes and Literal(...) parts. A synchronising literal waits for the
        server's `+` (if the server answers with a tagged response instead, that is returned at once)."""
        tag_b = tag.encode()
        pending = tag_b + b" "
        for part in parts:
            if isinstance(part, Literal):
                if literal_plus:
                    pending += b"{%d+}\r\n" % len(part.data) + part.data
                    continue
                self.send(pending + b"{%d}\r\n" % len(part.data))
                pending = b""
                resp, _ = self.read_response(timeout)
                if resp.startswith(tag_b + b" "):
                    return [], resp
                if not resp.startswith(b"+"):
                    raise ImapError(f"expected a continuation for a literal, got {resp!r}")
                pending = part.data
            else:
                pending += part
        self.send(pending + b"\r\n")
        return self.read_until_tagged(tag, timeout)

    def starttls(self, ctx, server_hostname=None, tag="S1"):
        """STARTTLS; fails if the server sent anything after its OK in plaintext."""
        self.ok(tag, "STARTTLS")
        self.upgrade_tls(ctx, server_hostname)


def imap_exchange(client, data, tag, timeout=None):
    """Writes raw bytes on an ImapClient and reads until the response tagged `tag`."""
    return client.exchange(data, tag, timeout)


def untagged_capabilities(responses_or_line):
    """The capability names found in a `* CAPABILITY ...` response or an `[CAPABILITY ...]` code."""
    lines = responses_or_line if isinstance(responses_or_line, list) else [responses_or_line]
    caps = set()
    for line in lines:
        m = re.search(rb"(?:^\* CAPABILITY |\[CAPABILITY )([^\]\r\n]*)", line, re.I)
        if m:
            caps.update(c.upper().decode() for c in m.group(1).split())
    return caps


# ---------------------------------------------------------------------------------------------------
# Dovecot back-end


def _mail_owner():
    """Mail files belong to `nobody` (Dovecot refuses uid 0 for mail)."""
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


class Dovecot:
    """A private Dovecot (IMAP + POP3) on one loopback IP with passwd-file users and maildir mail.

    users: {login: password}. Marker mailboxes: `markers=["on-A"]` creates that (empty) mailbox for every
    user before the start, so a client can tell which back-end it landed on with LIST.
    root: a fixed directory instead of a fresh temp dir (the demo); ports: fixed instead of ephemeral.
    """

    def __init__(self, name, ip, users, markers=(), ssl=False, root=None, imap_port=None, pop3_port=None,
                 keep=False, extra_conf=""):
        self.name = name
        self.ip = ip
        self.users = dict(users)
        self.markers = list(markers)
        self.ssl = ssl
        self.keep = keep or root is not None
        self.extra_conf = extra_conf
        self.fixed_ports = (imap_port, pop3_port)
        self.root = root or tempfile.mkdtemp(prefix=f"gh-dovecot-{name}-")
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)  # login processes (dovenull) and mail processes (nobody) traverse it
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.mail_root = os.path.join(self.root, "mail")
        self.proc = None
        self.pgid = None
        self.imap_port = self.pop3_port = self.imaps_port = self.pop3s_port = None
        self.cert = self.key = None
        self.uid, self.gid = _mail_owner()

    # -- layout
    def maildir(self, user, mailbox="INBOX"):
        base = os.path.join(self.mail_root, user, "Maildir")
        return base if mailbox == "INBOX" else os.path.join(base, "." + mailbox)

    def _mkdir_owned(self, path):
        os.makedirs(path, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o700)

    def _make_maildir(self, user, mailbox="INBOX"):
        for p in (os.path.join(self.mail_root, user), os.path.join(self.mail_root, user, "Maildir")):
            self._mkdir_owned(p)
        md = self.maildir(user, mailbox)
        self._mkdir_owned(md)
        for sub in ("cur", "new", "tmp"):
            self._mkdir_owned(os.path.join(md, sub))
        if mailbox != "INBOX":
            marker = os.path.join(md, "maildirfolder")
            open(marker, "a").close()
            os.chown(marker, self.uid, self.gid)

    def create_mailbox(self, user, mailbox):
        """Creates a maildir++ folder on disk (do it before the user's first login: list index)."""
        self._make_maildir(user, mailbox)

    def deliver(self, user, message, mailbox="INBOX"):
        """Delivers a message from outside, as an MTA does: write into tmp/, rename into new/."""
        if isinstance(message, str):
            message = message.encode("utf-8")
        md = self.maildir(user, mailbox)
        if not os.path.isdir(md):
            self._make_maildir(user, mailbox)
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.harness"
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(message)
        os.chown(tmp, self.uid, self.gid)
        os.chmod(tmp, 0o600)
        final = os.path.join(md, "new", f"{name},S={len(message)}")
        os.rename(tmp, final)
        return final

    # -- configuration
    def _write_conf(self):
        os.makedirs(os.path.join(self.root, "state"), exist_ok=True)
        passwd = os.path.join(self.root, "users.passwd")
        with open(passwd, "w", encoding="utf-8") as f:
            for login, password in self.users.items():
                f.write(f"{login}:{ssha(password)}::::::\n")
        os.chmod(passwd, 0o644)
        ssl_conf = "ssl = no"
        if self.ssl:
            ssl_conf = f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.key}\nssl_min_protocol = TLSv1.2"
        imaps = self.imaps_port or 0
        pop3s = self.pop3s_port or 0
        conf = f"""# Gatehouse test back-end {self.name} (generated by tests/integration/harness.py)
instance_name = gh-test-{self.name}-{os.path.basename(self.root)}
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
listen = {self.ip}
protocols = imap pop3
{ssl_conf}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Every proxied login comes from 127.0.0.x: no failure delay, so one test's refused login does not slow
# down the next test's logins (the per-IP auth penalty is avoided by the tests' distinct source IPs).
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
imap_id_log = *
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
passdb {{
  driver = passwd-file
  args = scheme=SSHA {passwd}
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.mail_root}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {self.ip}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {self.ip}
    port = {imaps}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {self.ip}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    address = {self.ip}
    port = {pop3s}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
{self.extra_conf}
"""
        with open(self.conf, "w") as f:
            f.write(conf)

    # -- life cycle
    def start(self):
        if self.ssl and not self.cert:
            self.cert, self.key = make_cert(self.root, cn=f"{self.name.lower()}.example.test",
                                            names=(f"{self.name.lower()}.example.test",), ips=(self.ip,))
            os.chmod(self.key, 0o644)  # read by the master (root) only, but keep it simple
        for login in self.users:
            self._make_maildir(login)
            for marker in self.markers:
                self._make_maildir(login, marker)
        attempts = 1 if all(self.fixed_ports) else 3
        for attempt in range(attempts):
            self.imap_port = self.fixed_ports[0] or free_port(self.ip)
            self.pop3_port = self.fixed_ports[1] or free_port(self.ip)
            if self.ssl:
                self.imaps_port = free_port(self.ip)
                self.pop3s_port = free_port(self.ip)
            self._write_conf()
            try:
                self._spawn()
                return self
            except RuntimeError as e:
                self._reap()
                if "Address already in use" not in str(e) or attempt == attempts - 1:
                    raise
        return self

    def _spawn(self):
        log_offset = self.log_size()
        out = open(os.path.join(self.root, "dovecot.stdout"), "ab")
        try:
            self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        self.pgid = self.proc.pid
        _register(self)
        deadline = time.monotonic() + START_TIMEOUT
        for port, banner in ((self.imap_port, b"* OK"), (self.pop3_port, b"+OK")):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dovecot {self.name} exited with {self.proc.returncode}: "
                                       f"{self._stdout()}\n{self.log_text()[log_offset:]}")
                if _banner_ok(self.ip, port, banner):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot {self.name} not ready on {self.ip}:{port} after "
                                       f"{START_TIMEOUT}s: {self.log_text()[log_offset:]}")
                time.sleep(0.02)  # polling interval of a bounded wait

    def _stdout(self):
        try:
            with open(os.path.join(self.root, "dovecot.stdout"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _reap(self):
        if self.proc is not None:
            _stop_group(self.proc, self.pgid, signal.SIGTERM, 10)
            self.proc = None
        _unregister(self)

    def stop(self):
        """SIGTERM to the master, wait for its whole process group, remove the temp dir."""
        self._reap()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def kill(self):
        """SIGKILL to every process of this Dovecot (no goodbye to clients: a crashed back-end)."""
        if self.proc is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- logs
    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern, since=0, timeout=IO_TIMEOUT):
        """Waits until the log (from byte offset `since`) matches regex `pattern`; returns the match."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_text(since)), timeout, f"dovecot {self.name} log: {pattern}")

    # -- for Gatehouse's config
    def backend_config(self, name=None, tls="none", **extra):
        cfg = {"name": name or self.name, "address": self.ip,
               "ports": {"imap": self.imap_port, "pop3": self.pop3_port}, "tls": tls}
        if tls == "implicit":
            cfg["ports"] = {"imap": self.imaps_port, "pop3": self.pop3s_port}
        if tls != "none" and self.cert:
            cfg.setdefault("ca_file", self.cert)
            cfg.setdefault("server_name", f"{self.name.lower()}.example.test")
        cfg.update(extra)
        return cfg

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _banner_ok(ip, port, banner):
    try:
        with socket.create_connection((ip, port), timeout=2) as s:
            s.settimeout(2)
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(banner)
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------
# Gatehouse


def gatehouse_bin():
    path = os.environ.get("GATEHOUSE_BIN")
    if path:
        return path
    for candidate in (os.path.join(REPO, "build", "gatehouse"),):
        if os.path.exists(candidate):
            return candidate
    return None


def listener(name, tls="none", require_tls_for_auth=None, protocol="imap", port=0, address="127.0.0.1"):
    cfg = {"name": name, "address": address, "port": port, "protocol": protocol, "tls": tls}
    if require_tls_for_auth is not None:
        cfg["require_tls_for_auth"] = require_tls_for_auth
    return cfg


def user(login, password, backend, backend_login=None, protocols=("imap",)):
    """A directory user for Gatehouse(users=[...]); the password is hashed when the file is written."""
    return {"login": login, "password": password, "backend": backend,
            "backend_login": backend_login or login, "protocols": list(protocols)}


# What ASan, LeakSanitizer and UBSan print when they find something.
_SANITIZER_REPORT = re.compile(r"ERROR: (?:AddressSanitizer|LeakSanitizer)|runtime error: ")
# UBSan's vptr reports (see Gatehouse.start(nofile=)). What their note says varies with whether a
# descriptor was free when the report was printed: "invalid vptr", or the right dynamic type.
_VPTR_REPORT = re.compile(r"runtime error: [^\n]* which does not point to an object of type ")


class Gatehouse:
    """Runs $GATEHOUSE_BIN with a generated config, users file and self-signed certificate.

    config: the JSON config as a dict (listeners with port 0 get ephemeral ports; `tls` defaults to the
    generated certificate). users: list of user(...) dicts; written hashed to users.json and used as the
    static directory. After start(), `ports[name]` gives each listener's real port.
    """

    def __init__(self, config, users=None, root=None, binary=None, workers=2, auth_failure_delay_ms=0):
        self.binary = binary or gatehouse_bin()
        if not self.binary or not os.path.exists(self.binary):
            raise FileNotFoundError(f"gatehouse binary not found (GATEHOUSE_BIN={self.binary!r})")
        self.keep = root is not None
        self.root = root or tempfile.mkdtemp(prefix="gh-gatehouse-")
        os.makedirs(self.root, exist_ok=True)
        self.config = copy.deepcopy(config)
        self.config.setdefault("workers", workers)
        self.config.setdefault("hostname", "mail.example.test")
        # Tests refuse many logins: no delay unless the config sets one. None: Gatehouse's default.
        if auth_failure_delay_ms is not None:
            self.config["timeouts"] = dict(self.config.get("timeouts", {}))
            self.config["timeouts"].setdefault("auth_failure_delay_ms", auth_failure_delay_ms)
        self.users = list(users or [])
        self.cert, self.key = make_cert(self.root)
        self.config.setdefault("tls", {"certificates": [
            {"cert": os.path.basename(self.cert), "key": os.path.basename(self.key),
             "names": ["mail.example.test", "other.example.test"]}]})
        if users is not None:
            self.config["directory"] = {"type": "static", "users_file": "users.json"}
        self.config_path = os.path.join(self.root, "gatehouse.json")
        self.stderr_path = os.path.join(self.root, "gatehouse.stderr")
        self.stdout_path = os.path.join(self.root, "gatehouse.stdout")
        self.proc = None
        self.out_of_descriptors = False  # see start(nofile=)
        self.ports = {}
        self.returncode = None
        self._write()

    @property
    def passwords(self):
        return [u["password"] for u in self.users]

    def _write(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)
        if self.config.get("directory", {}).get("users_file") == "users.json":
            hashed = []
            for u in self.users:
                h = {k: v for k, v in u.items() if k != "password"}
                h["password"] = ssha(u["password"])
                hashed.append(h)
            with open(os.path.join(self.root, "users.json"), "w") as f:
                json.dump({"users": hashed}, f, indent=2)

    def check_config(self):
        """Runs --check-config; returns (exit code, stdout + stderr)."""
        r = subprocess.run([self.binary, "--check-config", self.config_path], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", errors="replace")

    def start(self, timeout=START_TIMEOUT, nofile=None):
        """`nofile`: the process's limit of open files (RLIMIT_NOFILE), a number or (soft, hard)."""
        names = [l.get("name") for l in self.config.get("listeners", [])]
        if isinstance(nofile, int):
            nofile = (nofile, nofile)
        limit = None if nofile is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile))
        env = dict(os.environ)
        self.out_of_descriptors = nofile is not None
        if self.out_of_descriptors:
            # UBSan's vptr check probes an object's memory through a pipe() before it reads the
            # vtable. Out of descriptors the pipe fails and a live object "has invalid vptr": a
            # ten-line program shows it, and the reports here name the right dynamic type when a
            # descriptor was free again to print it. Suppressions cannot name a type that could not
            # be read, so here UBSan goes on after a vptr report (CMakeLists.txt:
            # -fsanitize-recover=vptr) and cleanup() lets vptr reports through, and only those.
            # ASan still aborts on any use after free.
            env["UBSAN_OPTIONS"] = ":".join(filter(None, [env.get("UBSAN_OPTIONS"), "halt_on_error=0"]))
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen([self.binary, "--config", self.config_path], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True, cwd=self.root,
                                         preexec_fn=limit, env=env)
        _register(self)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"gatehouse exited with {self.proc.returncode} during start:\n{self.stderr_text()}")
            ports = {}
            for line in self.log_lines():
                if line.get("msg") == "listening" and "listener" in line:
                    name, port = line["listener"], int(line["port"])
                    if ports.setdefault(name, port) != port:
                        raise RuntimeError(f"listener {name} reports two ports {ports[name]} and {port}")
            return ports if all(n in ports for n in names) else None

        try:
            self.ports = wait_for(ready, timeout, f"gatehouse listening lines for {names}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.stderr_text()}") from None
        return self

    def port(self, name):
        return self.ports[name]

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        """The JSON log lines written so far (non-JSON lines are skipped; see stderr_text())."""
        lines = []
        for raw in self.stderr_text().splitlines():
            raw = raw.strip()
            if not raw.startswith("{"):
                continue
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def wait_log(self, predicate, timeout=IO_TIMEOUT, what="log line"):
        """Waits for a parsed log line for which predicate(line) is true; returns it."""
        def find():
            for line in self.log_lines():
                if predicate(line):
                    return line
            return None
        return wait_for(find, timeout, f"gatehouse {what}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self):
        """Sends SIGTERM (graceful shutdown) without waiting."""
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout):
        """Waits for the process to exit; returns its exit code (TimeoutError if it does not)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"gatehouse did not exit within {timeout}s") from None
        _unregister(self)
        return self.returncode

    def stop(self, timeout=None):
        """SIGTERM, bounded wait (grace period + 5 s), asserts exit code 0."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            _unregister(self)
            if rc not in (None, 0):
                raise AssertionError(f"gatehouse had already exited with {rc}:\n{self.stderr_text()[-3000:]}")
            return rc
        grace = self.config.get("timeouts", {}).get("shutdown_grace_ms", 10000) / 1000.0
        timeout = timeout or grace + 5
        self.terminate()
        try:
            rc = self.wait_exit(timeout)
        except TimeoutError:
            self.kill()
            raise AssertionError(f"gatehouse did not exit within {timeout}s of SIGTERM") from None
        if rc != 0:
            raise AssertionError(f"gatehouse exited with {rc} after SIGTERM:\n{self.stderr_text()[-3000:]}")
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        _unregister(self)

    def cleanup(self):
        """Kills the process if it still runs and removes the temp dir (use with addCleanup). Fails if a
        sanitizer build (build-asan) reported an error: it aborts Gatehouse, which a test may not notice."""
        self.kill()
        text = self.stderr_text()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.out_of_descriptors:
            text = _VPTR_REPORT.sub("vptr check: ", text)
        report = _SANITIZER_REPORT.search(text)
        if report:
            raise AssertionError("sanitizer report in gatehouse's stderr:\n" +
                                 text[max(0, report.start() - 500):report.start() + 4000])

    def client(self, listener_name, tls=None, server_hostname=None, source_ip=None, timeout=IO_TIMEOUT):
        return ImapClient(self.ports[listener_name], tls=tls, server_hostname=server_hostname,
                          source_ip=source_ip, timeout=timeout)


# ---------------------------------------------------------------------------------------------------
# a load balancer in front


class HAProxy:
    """haproxy -db (foreground) in TCP mode with one frontend per (name, target port, send-proxy option)."""

    def __init__(self, routes):
        self.root = tempfile.mkdtemp(prefix="gh-haproxy-")
        self.ports = {name: free_port() for name in routes}
        sections = ["global\n  maxconn 200\n",
                    "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"]
        for name, (target, option) in routes.items():
            sections.append(f"frontend fe_{name}\n  bind 127.0.0.1:{self.ports[name]}\n  default_backend be_{name}\n")
            sections.append(f"backend be_{name}\n  server gatehouse 127.0.0.1:{target} {option}\n")
        self.config = os.path.join(self.root, "haproxy.cfg")
        with open(self.config, "w") as f:
            f.write("\n".join(sections))
        self.log = open(os.path.join(self.root, "haproxy.log"), "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        for port in self.ports.values():
            wait_for(lambda: self.proc.poll() is not None or self._listening(port), IO_TIMEOUT, "haproxy listening")
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy failed: " + open(self.log.name).read())

    @staticmethod
    def _listening(port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# fake back-end for faults a real server cannot show


class GatedForwarder:
    """A TCP forwarder from 127.0.0.1:0 to a real server that holds back what the server sends until
    release(): a back-end whose greeting comes late, on cue. `accepted` is set once a connection came in."""

    def __init__(self, ip, port):
        self.target = (ip, port)
        self.accepted = threading.Event()
        self._released = threading.Event()
        self._sockets = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name="GatedForwarder", daemon=True)
        self._thread.start()
        _register(self)

    def _run(self):
        while True:
            try:
                conn, _ = self._sock.accept()
                up = socket.create_connection(self.target, timeout=IO_TIMEOUT)
            except OSError:
                return
            up.settimeout(None)
            self._sockets += [conn, up]
            self.accepted.set()
            threading.Thread(target=self._pump, args=(conn, up, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, self._released), daemon=True).start()

    @staticmethod
    def _pump(src, dst, gate):
        if gate is not None:
            gate.wait(IO_TIMEOUT)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except OSError:
            pass

    def backend_config(self, name):
        return {"name": name, "address": "127.0.0.1", "ports": {"imap": self.port, "pop3": self.port},
                "tls": "none"}

    def release(self):
        self._released.set()

    def stop(self):
        self._released.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
        for s in self._sockets:
            s.close()
        _unregister(self)


def unread_bytes(port, peer_port):
    """Recv-Q of the local TCP socket 127.0.0.1:port connected to :peer_port (None if there is none)."""
    out = subprocess.run(["ss", "-tnH", "src", f"127.0.0.1:{port}", "dst", f"127.0.0.1:{peer_port}"],
                         capture_output=True, text=True, timeout=10).stdout.split()
    return int(out[1]) if len(out) > 1 else None


class ScriptedServer:
    """A TCP server on ip:0 (127.0.0.1 by default) for scripted back-ends: each accepted connection is
    passed to `serve(conn)` in a thread of its own and closed afterwards; a peer that goes away ends it
    quietly. `stopping` is set by stop(): a serve() that holds its connection open waits on it."""

    def __init__(self, ip="127.0.0.1"):
        self.ip = ip
        self.stopping = threading.Event()
        self._sock = socket.socket()
        self._sock.bind((ip, 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        _register(self)

    def serve(self, conn):
        raise NotImplementedError

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _serve_one(self, conn):
        with conn:
            try:
                self.serve(conn)
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
        _unregister(self)

    kill = stop


class FakeImap(ScriptedServer):
    """A scripted IMAP back-end. It greets with `greeting`, answers CAPABILITY with `capabilities`,
    ID with OK, LOGIN and AUTHENTICATE PLAIN (initial response or continuation) with `login_answer`
    ("{tag}" replaced by the command's tag), LOGOUT with BYE, anything else with OK. A command whose
    verb is in `unanswered` gets no answer: the back-end waits for the end of the connection and
    closes (it died). `commands` holds every line received (SASL responses included), in order."""

    def __init__(self, greeting, capabilities, login_answer, unanswered=()):
        self.greeting = greeting
        self.capabilities = capabilities
        self.login_answer = login_answer
        self.unanswered = set(unanswered)
        self.commands = []
        super().__init__()

    def backend_config(self, name):
        return {"name": name, "address": "127.0.0.1", "ports": {"imap": self.port}, "tls": "none"}

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
            if verb in self.unanswered:
                conn.makefile("rb").read()  # until Gatehouse passes on the client's end
                return
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


class FakeBackend(ScriptedServer):
    """A back-end that misbehaves from the start. mode:
    "silent"      accepts and never sends anything (a hung back-end);
    "greet_close" sends an IMAP greeting, then closes;
    "close"       accepts and closes at once.
    `connections` counts accepted connections.
    """

    def __init__(self, mode, ip="127.0.0.1"):
        if mode not in ("silent", "greet_close", "close"):
            raise ValueError(mode)
        self.mode = mode
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__(ip)

    def serve(self, conn):
        with self._lock:
            self.connections += 1
        if self.mode == "silent":
            self.stopping.wait()  # holds the connection open until the test ends
        elif self.mode == "greet_close":
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1] fake back-end ready\r\n")

    def backend_config(self, name):
        return {"name": name, "address": self.ip, "ports": {"imap": self.port, "pop3": self.port}, "tls": "none"}

    def wait_connections(self, n, timeout=IO_TIMEOUT):
        return wait_for(lambda: self.connections >= n, timeout, f"{n} connection(s) to fake back-end")
