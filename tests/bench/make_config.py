#!/usr/bin/env python3
"""Writes the Gatehouse configuration for the peer rig in ../shared/bench (ports 20443 IMAP,
20410 POP3, 20493 IMAPS; back-ends A/B = the rig's Dovecots; the rig's users)."""
import argparse, base64, hashlib, json, os

ap = argparse.ArgumentParser()
ap.add_argument("--directory", choices=["static", "ldap"], default="static")
ap.add_argument("--out", required=True)
ap.add_argument("--users", type=int, default=1000)
ap.add_argument("--no-pop3", action="store_true", help="leave out the POP3 listener")
ap.add_argument("--cache", choices=["on", "off"], default="on",
                help="off: every login is an LDAP search and a bind (the cold-cache case)")
a = ap.parse_args()


def ssha(password, salt):
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


config = {
    "workers": 2,
    "hostname": "mail.example.test",
    "tls": {"certificates": [{"cert": "/tmp/bench-tls/cert.pem", "key": "/tmp/bench-tls/key.pem",
                              "names": ["mail.example.test"]}]},
    "listeners": [
        {"name": "imap", "address": "127.0.0.1", "port": 20443, "protocol": "imap", "tls": "none"},
        {"name": "pop3", "address": "127.0.0.1", "port": 20410, "protocol": "pop3", "tls": "none"},
        {"name": "imaps", "address": "127.0.0.1", "port": 20493, "protocol": "imap", "tls": "implicit"},
    ],
    "backends": [
        {"name": "A", "address": "127.0.1.1", "ports": {"imap": 20143, "pop3": 20110}, "tls": "none"},
        {"name": "B", "address": "127.0.1.2", "ports": {"imap": 20143, "pop3": 20110}, "tls": "none"},
    ],
    "limits": {"max_connections": 19000},
    "log": {"level": "info"},
}
if a.no_pop3:
    config["listeners"] = [l for l in config["listeners"] if l["protocol"] != "pop3"]
if a.directory == "static":
    users = [{"login": f"user{i:04d}", "password": ssha(f"pass-{i:04d}", os.urandom(8)),
              "backend": "A" if i % 2 == 0 else "B", "protocols": ["imap", "pop3"]}
             for i in range(a.users)]
    with open(os.path.join(a.out, "users.json"), "w") as f:
        json.dump({"users": users}, f)
    config["directory"] = {"type": "static", "users_file": "users.json"}
else:
    config["directory"] = {
        "type": "ldap",
        # The rig's slapd allows anonymous search; its mailHost values are the back-ends' IPs.
        "ldap": {"uris": ["ldap://127.0.0.1:20389"], "base_dn": "dc=example,dc=test",
                 "filter": "(uid=%u)", "attributes": {"backend": "mailHost", "login": "uid"}},
    }
config["directory"]["cache"] = {"enabled": a.cache == "on", "ttl_s": 3600}
with open(os.path.join(a.out, "gatehouse.json"), "w") as f:
    json.dump(config, f, indent=2)
