"""A private OpenLDAP slapd for integration tests: temp dir, 127.0.0.1, ephemeral port, stopped by pid.

Standard library only. The directory is dc=example,dc=com with ou=people and a service account
(SERVICE_DN / SERVICE_PW); the admin (ADMIN_DN / ADMIN_PW) changes entries with modify(). The schema is
core + cosine + inetorgperson + misc (mailHost) + deploy/ldap/gatehouse.schema (gatehouseProtocol,
gatehouseDisabled). Data is loaded with slapadd before the first start; every wait has a deadline.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import textwrap

import harness

BASE_DN = "dc=example,dc=com"
PEOPLE_DN = f"ou=people,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PW = "admin-test-secret"
SERVICE_DN = f"cn=gatehouse,ou=services,{BASE_DN}"
SERVICE_PW = "service-test-secret"
SCHEMA = os.path.join(harness.REPO, "deploy", "ldap", "gatehouse.schema")


def slappasswd(password):
    """The {SSHA} hash slapd stores (computed here, as slappasswd -h {SSHA} would)."""
    return harness.ssha(password)


def person(uid, password, mail_host, protocols=(), disabled=None, mail=None, extra=""):
    """An LDIF entry under ou=people for a mail user."""
    lines = [f"dn: uid={uid},{PEOPLE_DN}", "objectClass: inetOrgPerson",
             "objectClass: inetLocalMailRecipient", "objectClass: gatehouseUser", f"uid: {uid}",
             f"cn: {uid}", f"sn: {uid}", f"mail: {mail or uid + '@example.com'}",
             f"userPassword: {slappasswd(password)}"]
    if mail_host is not None:
        lines.append(f"mailHost: {mail_host}")
    lines += [f"gatehouseProtocol: {p}" for p in protocols]
    if disabled is not None:
        lines.append(f"gatehouseDisabled: {'TRUE' if disabled else 'FALSE'}")
    if extra:
        lines += extra.strip().splitlines()
    return "\n".join(lines)


_BASE_ENTRIES = [
    f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
    f"dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people",
    f"dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services",
    f"dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: gatehouse\n"
    f"userPassword: {{SSHA}}PLACEHOLDER",
]


class Slapd:
    """slapd on 127.0.0.1:<free port> with the base entries plus `ldif_entries` (LDIF strings)."""

    def __init__(self, ldif_entries=(), port=None, tls=False, root=None, database_conf="", global_conf=""):
        """tls=True: a self-signed certificate for 127.0.0.1 (self.cert, its own CA), StartTLS on the
        ldap:// port and an ldaps:// listener on self.ldaps_port. database_conf: slapd.conf lines for
        the database section (limits, say); global_conf: lines for the global section (idletimeout)."""
        self.database_conf = database_conf
        self.global_conf = global_conf
        self.root = root or tempfile.mkdtemp(prefix="gh-slapd-")
        os.makedirs(self.root, exist_ok=True)
        self.cert = self.key = None
        self.ldaps_port = None
        if tls:
            self.cert, self.key = harness.make_cert(self.root, cn="ldap.example.test",
                                                    names=("ldap.example.test",), ips=("127.0.0.1",))
        self.db = os.path.join(self.root, "db")
        os.makedirs(self.db)
        self.conf = os.path.join(self.root, "slapd.conf")
        self.log_path = os.path.join(self.root, "slapd.log")
        self.fixed_port = port
        self.port = None
        self.proc = None
        self.paused = False
        entries = list(_BASE_ENTRIES)
        entries[-1] = entries[-1].replace("{SSHA}PLACEHOLDER", slappasswd(SERVICE_PW))
        entries += [textwrap.dedent(e).strip() for e in ldif_entries]
        self._write_conf()
        ldif = os.path.join(self.root, "data.ldif")
        with open(ldif, "w") as f:
            f.write("\n\n".join(entries) + "\n")
        r = subprocess.run(["slapadd", "-q", "-f", self.conf, "-l", ldif], capture_output=True, timeout=60)
        if r.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"slapadd failed: {r.stderr.decode(errors='replace')}")

    @property
    def uri(self):
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self):
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def _write_conf(self):
        tls = f"TLSCertificateFile {self.cert}\nTLSCertificateKeyFile {self.key}\n" if self.cert else ""
        with open(self.conf, "w") as f:
            f.write(f"""# slapd for a Gatehouse integration test (tests/integration/slapd.py)
{tls}{self.global_conf}
include  /etc/ldap/schema/core.schema
include  /etc/ldap/schema/cosine.schema
include  /etc/ldap/schema/inetorgperson.schema
include  /etc/ldap/schema/misc.schema
include  {SCHEMA}
pidfile  {self.root}/slapd.pid
argsfile {self.root}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database  mdb
maxsize   104857600
suffix    "{BASE_DN}"
rootdn    "{ADMIN_DN}"
rootpw    {slappasswd(ADMIN_PW)}
directory {self.db}
index     objectClass eq
index     uid eq
index     mail eq
{self.database_conf}
access to attrs=userPassword
  by anonymous auth
  by self read
  by * none
access to *
  by * read
""")

    # -- life cycle
    def start(self, timeout=harness.START_TIMEOUT):
        """Starts slapd (again, on the same port after a stop) and waits until it answers a search."""
        if self.port is None:
            self.port = self.fixed_port or harness.free_port()
        urls = self.uri + "/"
        if self.cert:
            self.ldaps_port = self.ldaps_port or harness.free_port()
            urls += " " + self.ldaps_uri + "/"
        log = open(self.log_path, "ab")
        try:
            # -d 0: stay in the foreground, so that self.proc.pid is slapd itself.
            self.proc = subprocess.Popen(["slapd", "-d", "0", "-f", self.conf, "-h", urls],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        finally:
            log.close()
        self.paused = False
        harness._register(self)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.proc.returncode}: {self.log_text()}")
            return self.answers()

        harness.wait_for(ready, timeout, f"slapd on {self.uri}")
        return self

    def answers(self):
        r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "nettimeout=2", "-l", "2", "-H", self.uri,
                            "-b", BASE_DN, "-s", "base", "dn"], capture_output=True, timeout=10)
        return r.returncode == 0

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def pause(self):
        """SIGSTOP: the socket still accepts connections (kernel backlog) but nothing is answered."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self._signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout=10):
        """SIGTERM (after SIGCONT if paused) and a bounded wait; SIGKILL if it does not exit."""
        if self.proc is not None:
            if self.paused:
                self.resume()
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
            self.proc = None
        harness._unregister(self)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        harness._unregister(self)

    def cleanup(self):
        """Stops slapd if it runs and removes the temp dir (use with addCleanup)."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- data
    def modify(self, ldif):
        """Applies LDIF change records with ldapmodify as the admin."""
        r = subprocess.run(["ldapmodify", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PW],
                           input=textwrap.dedent(ldif).strip().encode() + b"\n", capture_output=True,
                           timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"ldapmodify failed: {r.stderr.decode(errors='replace')}")

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ldap_config(self, **overrides):
        """Gatehouse's directory.ldap object for this server (service account, gatehouse attributes)."""
        cfg = {"uris": [self.uri], "bind_dn": SERVICE_DN, "bind_password": SERVICE_PW, "base_dn": BASE_DN,
               "attributes": {"protocols": "gatehouseProtocol", "disabled": "gatehouseDisabled"}}
        cfg.update(overrides)
        return cfg

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
