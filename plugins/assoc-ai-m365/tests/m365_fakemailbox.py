"""The mailbox model of the fake Microsoft 365: folders, messages, and the TLS files the fake serves with."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WELL_KNOWN_FR = {
    "inbox": "Boîte de réception",
    "sentitems": "Éléments envoyés",
    "deleteditems": "Éléments supprimés",
    "drafts": "Brouillons",
    "junkemail": "Courrier indésirable",
    "archive": "Archive",
}


# ---------------------------------------------------------------------------- TLS
def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA certificate and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "assoc-ai test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


# ---------------------------------------------------------------------------- model
def _graph_id(prefix: str = "AAMkAGI2") -> str:
    # Exchange ids are URL-safe base64 with padding; keep the "=" so URL quoting is exercised.
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode() + "AAA="


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    well_known: str = ""
    hidden: bool = False


@dataclass
class Msg:
    id: str
    folder_id: str
    raw: bytes
    internet_message_id: str
    subject: str
    sender: str
    received: float
    seq: int
    change_key: str = field(default_factory=lambda: secrets.token_hex(8))
    categories: list[str] = field(default_factory=list)
    is_read: bool = False
    is_draft: bool = False
    changed_seq: int = 0
    # Exchange's immutable id: kept for the item's life in the mailbox, shown only with Prefer: IdType="ImmutableId".
    immutable_id: str = field(default_factory=lambda: _graph_id("AAkALgAA"))
    attachments: list[dict[str, object]] = field(default_factory=list)


class _Messages(dict[str, Msg]):
    """Messages by their (moving) Graph id; a lookup by immutable id works too, as Graph accepts both."""

    def __init__(self) -> None:
        super().__init__()
        self._immutable: dict[str, str] = {}  # immutable id -> current Graph id

    def __setitem__(self, key: str, msg: Msg) -> None:
        super().__setitem__(key, msg)
        self._immutable[msg.immutable_id] = key

    def __delitem__(self, key: str) -> None:
        msg = dict.__getitem__(self, key)
        super().__delitem__(key)
        if self._immutable.get(msg.immutable_id) == key:
            del self._immutable[msg.immutable_id]

    def pop(self, key: str, *default: Msg) -> Msg:  # type: ignore[override]
        if not dict.__contains__(self, key):
            if default:
                return default[0]
            raise KeyError(key)
        msg = dict.__getitem__(self, key)
        del self[key]
        return msg

    def __missing__(self, key: str) -> Msg:
        current = self._immutable.get(key)
        if current is None:
            raise KeyError(key)
        return dict.__getitem__(self, current)

    def get(self, key: str, default: Msg | None = None) -> Msg | None:  # type: ignore[override]
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        current = self._immutable.get(key)
        return dict.__getitem__(self, current) if current is not None else default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._immutable


class FakeMailbox:
    """One Exchange mailbox: folders, messages, master categories."""

    def __init__(self, address: str, counter: Callable[[], int]) -> None:
        self.address = address
        self._next = counter
        self.folders: dict[str, Folder] = {}
        self.messages: _Messages = _Messages()
        self.master_categories: list[dict[str, str]] = []
        self.tombstones: list[tuple[int, str, str]] = []  # (seq, folder_id, message id)
        root = Folder(_graph_id("AAMkAGRv"), "Haut de la banque d'informations", "", "msgfolderroot", hidden=True)
        self.folders[root.id] = root
        self.root_id = root.id
        for wk, name in WELL_KNOWN_FR.items():
            f = Folder(_graph_id("AAMkAGZv"), name, root.id, wk)
            self.folders[f.id] = f

    # ---- folders
    def well_known(self, name: str) -> Folder | None:
        return next((f for f in self.folders.values() if f.well_known == name.lower()), None)

    def folder(self, ref: str) -> Folder | None:
        return self.folders.get(ref) or self.well_known(ref)

    def children(self, parent_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == parent_id]

    def folder_by_path(self, path: str) -> Folder:
        """Test helper: ``"inbox"`` or ``"inbox/IA/Adhésion"`` or ``"IA/Adhésion"`` (creating missing levels)."""
        parts = [p for p in path.split("/") if p]
        current = self.well_known(parts[0]) if self.well_known(parts[0]) else None
        if current is None:
            current = self.folders[self.root_id]
        else:
            parts = parts[1:]
        for name in parts:
            found = next((c for c in self.children(current.id) if c.display_name.casefold() == name.casefold()), None)
            if found is None:
                found = Folder(_graph_id("AAMkAGZv"), name, current.id)
                self.folders[found.id] = found
            current = found
        return current

    # ---- messages
    def deliver(self, raw: bytes, folder: str = "inbox", *, received: float | None = None, categories: list[str] | None = None,
                draft: bool = False) -> Msg:
        """Put a message in a folder as Exchange delivery would (new id, new sequence number)."""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        mid = str(parsed.get("message-id", "")).strip()
        seq = self._next()
        m = Msg(
            id=_graph_id(),
            folder_id=self.folder_by_path(folder).id,
            raw=raw,
            internet_message_id=mid,
            subject=str(parsed.get("subject", "")),
            sender=email.utils.parseaddr(str(parsed.get("from", "")))[1],
            received=received if received is not None else time.time(),
            seq=seq,
            changed_seq=seq,
            categories=list(categories or []),
            is_draft=draft,
        )
        self.messages[m.id] = m
        return m

    def move(self, msg: Msg, folder_id: str) -> Msg:
        """Graph semantics: the moved message is a new item with a new id in the destination."""
        del self.messages[msg.id]
        self.tombstones.append((self._next(), msg.folder_id, msg.id))
        seq = self._next()
        moved = Msg(
            id=_graph_id(), folder_id=folder_id, raw=msg.raw, internet_message_id=msg.internet_message_id,
            subject=msg.subject, sender=msg.sender, received=msg.received, seq=seq, changed_seq=seq,
            categories=list(msg.categories), is_read=msg.is_read, is_draft=msg.is_draft,
            immutable_id=msg.immutable_id, attachments=list(msg.attachments),
        )
        self.messages[moved.id] = moved
        return moved

    def delete(self, msg_id: str) -> None:
        msg = self.messages.pop(self.messages[msg_id].id)
        self.tombstones.append((self._next(), msg.folder_id, msg.id))

    def touch(self, msg: Msg) -> None:
        msg.change_key = secrets.token_hex(8)
        msg.changed_seq = self._next()

    def in_folder(self, path: str) -> list[Msg]:
        fid = self.folder_by_path(path).id
        return sorted((m for m in self.messages.values() if m.folder_id == fid), key=lambda m: m.seq)

    def find_by_mid(self, mid: str) -> list[Msg]:
        return [m for m in self.messages.values() if m.internet_message_id == mid]

    def path_of(self, folder_id: str) -> str:
        names = []
        f = self.folders.get(folder_id)
        while f is not None and f.id != self.root_id:
            names.append(f.display_name)
            f = self.folders.get(f.parent_id)
        return "/".join(reversed(names))
