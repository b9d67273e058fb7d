"""A throw-away Dovecot IMAP server on 127.0.0.1, for tests and benchmarks.

Starts Debian's ``dovecot`` as an ordinary user (``nobody`` when the caller is
root) with its own configuration, Maildir and passwd file in a temporary
folder, on a free port, in the foreground so this process owns it; ``stop()``
ends the whole process group, so nothing is left running.  Nothing here talks
to the network beyond loopback.

    with DovecotServer() as server:
        user, password = server.add_user()
        config = server.config(user, password)
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from .config import ImapConfig

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
_PR_SET_PDEATHSIG = 1


def dovecot_available() -> bool:
    """True when a Dovecot binary is installed (``apt-get install dovecot-imapd``)."""
    return os.path.exists(DOVECOT) and os.access(DOVECOT, os.X_OK)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Run in the child: if the test process is killed, Dovecot is killed too."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class DovecotServer:
    """One Dovecot instance with throw-away accounts; see the module docstring.

    ``capabilities`` lists what the server announces (``imap_capability``), to
    imitate servers without MOVE or UIDPLUS; ``separator`` and ``prefix`` set
    the personal namespace (``"."`` and ``"INBOX."`` imitate Courier/Cyrus);
    ``tls`` adds an implicit-TLS listener with a self-signed certificate
    (``cert_file``); ``oauth2_url`` enables XOAUTH2/OAUTHBEARER checked
    against that token-introspection URL.  ``mail_format`` is Dovecot's
    storage (``maildir``, the default, or ``sdbox``/``mdbox``).
    """

    def __init__(
        self,
        *,
        capabilities: Sequence[str] | None = None,
        separator: str = "/",
        prefix: str = "",
        tls: bool = False,
        oauth2_url: str | None = None,
        mail_plugins: Sequence[str] = (),
        mail_format: str = "maildir",
    ) -> None:
        self.capabilities = list(capabilities) if capabilities else None
        self.separator = separator
        self.prefix = prefix
        self.tls = tls
        self.oauth2_url = oauth2_url
        self.mail_plugins = list(mail_plugins)
        self.mail_format = mail_format
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.base = Path(tempfile.mkdtemp(prefix="assoc-ai-dovecot-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: dict[str, str] = {}
        if os.geteuid() == 0:  # Dovecot is never run as root here
            entry = pwd.getpwnam("nobody")
            self._user, self._uid = entry.pw_name, entry.pw_uid
            self._gid = entry.pw_gid
            self._group = grp.getgrgid(entry.pw_gid).gr_name
        else:
            self._uid, self._gid = os.getuid(), os.getgid()
            self._user = pwd.getpwuid(self._uid).pw_name
            self._group = grp.getgrgid(self._gid).gr_name
        for sub in ("run", "state", "mail", "users"):
            (self.base / sub).mkdir()
        if tls:
            self._make_certificate()
        self._write_config()

    # ------------------------------------------------------------------ files

    @property
    def cert_file(self) -> Path:
        """The self-signed certificate (PEM) of the TLS listener."""
        return self.base / "cert.pem"

    def _make_certificate(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.base / "key.pem"), "-out", str(self.cert_file)],
            check=True, capture_output=True,
        )

    def _write_config(self) -> None:
        b, user, group = self.base, self._user, self._group
        lines = [
            f"base_dir = {b}/run",
            f"state_dir = {b}/state",
            f"log_path = {b}/dovecot.log",
            "protocols = imap",
            "listen = 127.0.0.1",
            f"ssl = {'yes' if self.tls else 'no'}",
            "disable_plaintext_auth = no",
            f"auth_mechanisms = plain login{' xoauth2 oauthbearer' if self.oauth2_url else ''}",
            "auth_failure_delay = 0",
            f"default_login_user = {user}",
            f"default_internal_user = {user}",
            f"default_internal_group = {group}",
            f"mail_location = {self.mail_format}:{b}/mail/%u",
            "mail_fsync = never",
        ]
        if self.tls:
            lines += [f"ssl_cert = <{b}/cert.pem", f"ssl_key = <{b}/key.pem"]
        if self.capabilities:
            lines.append("imap_capability = " + " ".join(self.capabilities))
        if self.mail_plugins:
            lines.append("mail_plugins = $mail_plugins " + " ".join(self.mail_plugins))
        if self.oauth2_url:
            (b / "oauth2.conf.ext").write_text(
                f"introspection_mode = auth\nintrospection_url = {self.oauth2_url}\nusername_attribute = email\n"
                "active_attribute = active\nactive_value = true\n"
            )
            lines += ["passdb {", "  driver = oauth2", "  mechanisms = xoauth2 oauthbearer",
                      f"  args = {b}/oauth2.conf.ext", "}"]
        lines += [
            "passdb {", "  driver = passwd-file",
            *(["  mechanisms = plain login"] if self.oauth2_url else []),
            f"  args = scheme=PLAIN username_format=%u {b}/users/%u", "}",
            "userdb {", "  driver = static", f"  args = uid={user} gid={group} home={b}/mail/%u", "}",
            "service imap-login {", "  inet_listener imap {", "    address = 127.0.0.1", f"    port = {self.port}", "  }",
            "  inet_listener imaps {", *(["    address = 127.0.0.1"] if self.tls else []),
            f"    port = {self.tls_port}", "  }", "  chroot =", "}",
            "service anvil {", "  chroot =", "}",
            "namespace inbox {", "  inbox = yes", f"  separator = {self.separator}",
            *([f"  prefix = {self.prefix}"] if self.prefix else []), "}",
        ]
        (b / "dovecot.conf").write_text("\n".join(lines) + "\n")
        self._chown()

    def _chown(self) -> None:
        if os.geteuid() != 0:
            return
        for root, dirs, files in os.walk(self.base):
            for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                os.lchown(name, self._uid, self._gid)

    # ------------------------------------------------------------------ accounts

    def add_user(self, name: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Create an account with an empty mailbox; return (login, password)."""
        name = name or f"u{uuid.uuid4().hex[:10]}@asso.test"
        password = password or uuid.uuid4().hex
        self._users[name] = password
        # one passwd file per account: Dovecot opens a new file for a new login, no reload needed
        (self.base / "users" / name).write_text(f"{name}:{{PLAIN}}{password}\n")
        self._chown()
        return name, password

    def maildir(self, user: str) -> Path:
        """The Maildir of ``user`` (exists after the first login)."""
        return self.base / "mail" / user

    def config(self, user: str, password: Any = ..., **overrides: Any) -> ImapConfig:
        """An :class:`ImapConfig` for ``user`` on this server (plain IMAP on loopback).

        ``password`` defaults to the account's; ``None`` means no password (XOAUTH2, hooks).
        """
        values: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "username": user,
            "password": self._users.get(user) if password is ... else password,
            "tls": "none", "timeout": 10.0, "retries": 2, "retry_wait": 0.05,
        }
        values.update(overrides)
        return ImapConfig(**values)

    def client(self, user: str, password: str | None = None) -> IMAPClient:
        """A separate, logged-in imapclient session (what a volunteer's mail program would do)."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(user, password if password is not None else self._users[user])
        return client

    # ------------------------------------------------------------------ process

    @property
    def running(self) -> bool:
        """True while the master process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start Dovecot and wait until it greets on its port."""
        if self.running:
            return
        if not dovecot_available():
            raise RuntimeError("Dovecot is not installed (apt-get install dovecot-imapd) / "
                               "Dovecot n'est pas installé (apt-get install dovecot-imapd)")
        log = open(self.base / "stderr.log", "ab")
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            kwargs.update(user=self._uid, group=self._gid, extra_groups=[])
        self._proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.base / "dovecot.conf")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent, **kwargs,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Dovecot exited at start-up:\n{self.log_tail()}")
            if self._greets():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Dovecot did not answer on 127.0.0.1:{self.port} within {timeout}s:\n{self.log_tail()}")

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Dovecot and every process it started; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self._kill_group(pgid)
        # the port must be free again before a restart on it
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._greets():
            time.sleep(0.05)

    @staticmethod
    def _kill_group(pgid: int) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            time.sleep(0.1)

    def restart(self) -> None:
        """Stop and start again on the same port (clients see their connection dropped)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of Dovecot's own logs (for failure messages)."""
        out = []
        for name in ("stderr.log", "dovecot.log"):
            path = self.base / name
            if path.exists():
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)

    # ------------------------------------------------------------------ faults

    def change_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Give ``folder`` a new UIDVALIDITY while keeping its messages (server must be stopped).

        Rewrites the ``V`` field of Dovecot's ``dovecot-uidlist`` and removes its
        index files, which is what a server restored from a backup looks like.
        Returns the new value.
        """
        if self.running:
            raise RuntimeError("stop the server before changing UIDVALIDITY")
        if self.mail_format != "maildir":
            raise RuntimeError("change_uidvalidity() edits Maildir files only")
        box = self.maildir(user)
        if folder.upper() != "INBOX":
            box = box / ("." + folder.replace(self.separator, "."))
        uidlist = box / "dovecot-uidlist"
        text = uidlist.read_text()
        old = int(re.search(r"\bV(\d+)", text).group(1))  # type: ignore[union-attr]
        new = old + 1000
        uidlist.write_text(re.sub(r"\bV\d+", f"V{new}", text, count=1))
        for index in box.glob("dovecot.index*"):
            index.unlink()
        self._chown()
        return new
