"""A private OpenLDAP server for the LDAP / Active Directory tests and bench: Debian's `slapd` on
a free loopback port, with a generated slapd.conf and an mdb database in a folder of the caller's,
loaded offline with `slapadd` (which also gives every entry its entryUUID). Changes while it runs
go through `ldapmodify` (ldap-utils), as an operator's would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAPMODIFY = "/usr/bin/ldapmodify"
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret"
SERVICE_DN = f"cn=svc,ou=services,{SUFFIX}"
SERVICE_PW = "service-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
database mdb
maxsize 1073741824
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/db
index objectClass eq
index uid,mail eq
index member eq
index entryUUID eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
# As a directory's operator would set it for a sync account: pages of 500 (the default size limit),
# as many pages as it takes (OpenLDAP otherwise caps a paged search's total at the hard limit).
limits dn.exact="{service_dn}" size.prtotal=unlimited
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
"""


def available() -> str | None:
    missing = [p for p in (SLAPD, SLAPADD, LDAPMODIFY) if not os.access(p, os.X_OK)]
    if missing:
        return f"OpenLDAP is not installed (Debian packages slapd, ldap-utils): {', '.join(missing)} missing"
    return None


def base_ldif() -> str:
    return f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: svc
userPassword: {SERVICE_PW}

"""


def person_ldif(uid: str, password: str, *, mail: str | None = None, name: str | None = None) -> str:
    mail_line = f"mail: {mail or f'{uid}@corp.example'}\n"
    return (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name or uid.title()}\n"
        f"sn: {uid}\ndisplayName: {name or uid.title()}\n{mail_line}userPassword: {password}\n\n"
    )


def group_ldif(cn: str, members: list[str]) -> str:
    lines = "".join(f"member: {m}\n" for m in members)
    return f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}\n"


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


@dataclass
class Slapd:
    dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(self.dir / "slapd.conf"), "-h", f"{self.url}/", "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def modify(self, ldif: str) -> None:
        """`ldapmodify` as the root DN (changetype records: add, modify, delete)."""
        subprocess.run(
            [LDAPMODIFY, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PW],
            input=ldif.encode(),
            check=True,
            capture_output=True,
        )


def _certificates(dir: Path) -> None:
    """A CA of the test's own (ca.pem) and the server's certificate for 127.0.0.1 and localhost,
    for StartTLS: a client trusting only the system's CAs must refuse it."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tillkey test directory CA")])
    ca = (
        x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
            issuer_name=ca_name,
            public_key=key.public_key(),
        )
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (dir / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (dir / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (dir / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def make(dir: Path, ldif: str) -> Slapd:
    """A configured, loaded and started slapd in `dir` (StartTLS with the certificate of
    `dir/ca.pem`'s CA)."""
    if dir.exists():
        shutil.rmtree(dir)
    (dir / "db").mkdir(parents=True)
    _certificates(dir)
    conf = CONF.format(dir=dir, suffix=SUFFIX, root_dn=ROOT_DN, root_pw=ROOT_PW, service_dn=SERVICE_DN)
    (dir / "slapd.conf").write_text(conf)
    (dir / "data.ldif").write_text(ldif)
    subprocess.run(
        [SLAPADD, "-q", "-f", str(dir / "slapd.conf"), "-l", str(dir / "data.ldif")], check=True, capture_output=True
    )
    server = Slapd(dir)
    server.start()
    return server
