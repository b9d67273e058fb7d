"""Sample mail for the kit: plain RFC 822 bytes, and a labelled set of two categories with its tiny model."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, make_msgid
from typing import Any

CATEGORY_A, CATEGORY_B = "Adhésion", "Événement"
FOLDER_A, FOLDER_B, REVIEW = "IA/Adhésion", "IA/Événement", "À vérifier"


def sample_mail(subject: str = "Bonjour", body: str = "Bonjour,\nune question.\nMerci", *,
                sender: str = "marie.dupont@exemple.org", to: str = "contact@asso.example",
                message_id: str | bool | None = True, headers: Mapping[str, str] | None = None,
                date: datetime | None = None) -> bytes:
    """RFC 822 bytes of a plain UTF-8 mail (``message_id=True``: a fresh one; ``False``: none)."""
    lines = [f"From: {sender}", f"To: {to}",
             "Subject: " + (subject if subject.isascii() else Header(subject, "utf-8").encode()),
             "Date: " + format_datetime(date or datetime(2025, 3, 4, 10, 0, tzinfo=UTC))]
    if message_id is True:
        lines.append("Message-ID: " + make_msgid(domain="exemple.org"))
    elif isinstance(message_id, str):
        lines.append(f"Message-ID: <{message_id.strip('<>')}>")
    lines += ["MIME-Version: 1.0", 'Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: 8bit"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode("utf-8")


_ADHESION = [
    ("Adhésion {y}", "Bonjour, je souhaite adhérer à l'association pour {y}. Comment régler la cotisation ?"),
    ("Cotisation annuelle", "Bonjour, ma carte de membre a expiré, je voudrais renouveler mon adhésion et payer la cotisation."),
    ("Renouvellement adhésion", "Je renouvelle mon adhésion, le chèque de cotisation est envoyé. Merci pour la carte de membre."),
    ("Question cotisation", "Quel est le montant de la cotisation pour un couple ? Nous voulons devenir membres."),
    ("Bulletin d'adhésion", "Ci-joint mon bulletin d'adhésion rempli et le règlement de la cotisation {y}."),
    ("Reçu de cotisation", "Pourriez-vous m'envoyer un reçu pour ma cotisation d'adhérent {y} ?"),
]
_EVENEMENT = [
    ("Inscription sortie", "Bonjour, je voudrais m'inscrire à la sortie du {d} avec deux amis. Reste-t-il des places ?"),
    ("Concert du {d}", "À quelle heure commence le concert du {d} ? Faut-il réserver les places ?"),
    ("Visite guidée", "Nous aimerions réserver la visite guidée du {d} pour un groupe de dix personnes."),
    ("Programme de la fête", "Pouvez-vous m'envoyer le programme de la fête de quartier du {d} ?"),
    ("Réservation atelier", "Je souhaite réserver une place pour l'atelier du {d}, l'inscription est-elle ouverte ?"),
    ("Annulation inscription", "Je dois annuler mon inscription à la visite du {d}, désolé. Libérez ma place."),
]


def kit_messages(n_per_category: int = 12, *, seed: int = 0) -> list[tuple[bytes, str]]:
    """Labelled sample mail of two categories (Adhésion / Événement) for the kit's model."""
    out = []
    for i in range(n_per_category):
        y, d = 2020 + (i + seed) % 6, f"{(i * 7 + seed) % 28 + 1} mai"
        for templates, label in ((_ADHESION, CATEGORY_A), (_EVENEMENT, CATEGORY_B)):
            subject, body = templates[(i + seed) % len(templates)]
            out.append((sample_mail(subject.format(y=y, d=d), body.format(y=y, d=d) + "\nBien cordialement",
                                    sender=f"personne{i}.{seed}@exemple.org"), label))
    return out


_MODEL_LOCK = threading.Lock()
_MODEL: Any = None


def kit_model() -> Any:
    """A tiny model trained once per process on :func:`kit_messages`."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            from assoc_ai_core.api import train
            from assoc_ai_core.mail.parsing import parse_message

            msgs = [parse_message(raw, label=label) for raw, label in kit_messages(12)]
            _MODEL = train(msgs, target_precision=0.9)
        return _MODEL
