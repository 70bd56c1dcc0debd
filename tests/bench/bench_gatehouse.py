"""A Gatehouse of its own for a benchmark script that runs against the rig: shared by same_users.py and
tls_handshakes.py."""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def pid_of(path):
    with open(path) as f:
        return int(f.readline())


def binary():
    return os.environ.get("GATEHOUSE_BIN", os.path.join(REPO, "build-bench", "gatehouse"))


def require(*paths):
    for need in (binary(),) + paths:
        if not os.path.exists(need):
            sys.exit(f"missing {need}: build Gatehouse and bring the rig up first (see the docstring)")


def config_for_rig(prefix):
    """make_config.py's configuration for the rig, in a new directory; returns the file's path."""
    state = tempfile.mkdtemp(prefix=prefix)
    subprocess.run([sys.executable, os.path.join(HERE, "make_config.py"), "--out", state], check=True)
    return os.path.join(state, "gatehouse.json")


class Gatehouse:
    """Runs Gatehouse on `config_path` from `with` to its end (SIGTERM then)."""

    def __init__(self, config_path):
        self.log_path = os.path.join(os.path.dirname(config_path), "gatehouse.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary(), "--config", config_path], stderr=self.log)
        self.pid = self.proc.pid

    def __enter__(self):
        deadline = time.monotonic() + 10
        while '"listener":"imaps"' not in open(self.log_path).read():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                sys.exit("gatehouse did not start: " + open(self.log_path).read()[-2000:])
            time.sleep(0.05)  # polling a bounded start-up, not a synchronisation
        if "port shared with another process" in open(self.log_path).read():
            self.__exit__()
            sys.exit("another process listens on Gatehouse's bench ports; stop it first")
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
