"""Model versions of a triage job: keep every model, say which one is live, roll back.

Layout (a ``models/`` folder next to the state file unless ``[model] registry``
says otherwise)::

    models/
      v0001.skops      the model (skops format, no pickle)
      v0001.json       how it was made and how it scored (evaluation, metadata), and the
                       file's SHA-256 (``sha256``) recorded when it was stored
      v0002.skops
      v0002.json
      current          one line: the live version ("v0002")

``promote`` and ``rollback`` only rewrite ``current`` (atomically), so the job
always loads a complete model.  Nothing is ever deleted.  The folder is created
mode 0700 and every file in it 0600: a model's vocabulary can hold words of
the mail it learnt from.

:meth:`ModelRegistry.load` refuses a file whose SHA-256 is no longer the one
recorded (changed behind the registry's back: copied over, edited, corrupted).
A version stored before digests were recorded loads without the check.  Code
that rewrites a stored model on purpose (erasure scrubbing its vocabulary)
goes through :meth:`ModelRegistry.replace`, which records the new digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, ModelError
from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import tr

_VERSION_RE = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class ModelVersion:
    """One stored model: its version name, file and recorded information."""

    version: str
    path: Path
    info: Mapping[str, Any] = field(default_factory=dict)
    current: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"version": self.version, "path": str(self.path), "current": self.current, **dict(self.info)}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (what the registry records for each version)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """Short SHA-256 of a file, used to name a model that is not in a registry."""
    return file_sha256(path)[:12]


class ModelRegistry:
    """The ``models/`` folder of a job."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.directory)!r})"

    def _versions(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        names = [p.stem for p in self.directory.glob("v*.skops") if _VERSION_RE.match(p.stem)]
        return sorted(names, key=lambda v: int(v[1:]))

    def current(self) -> str | None:
        """The live version, or None when the registry is empty."""
        pointer = self.directory / "current"
        try:
            version = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return version or None

    def path(self, version: str) -> Path:
        """File of ``version``; clear error when it does not exist."""
        if not _VERSION_RE.match(version or "") or not (self.directory / f"{version}.skops").is_file():
            known = ", ".join(self._versions()) or "-"
            raise ConfigError(tr(
                f"Version de modèle inconnue : {version}. Versions disponibles : {known} (assoc-ai model list).",
                f"Unknown model version: {version}. Available versions: {known} (assoc-ai model list).",
            ))
        return self.directory / f"{version}.skops"

    def info(self, version: str) -> dict[str, Any]:
        """The JSON record of ``version`` (empty when missing)."""
        try:
            record = json.loads((self.directory / f"{version}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return record if isinstance(record, dict) else {}

    def list(self) -> list[ModelVersion]:
        """Every stored version, oldest first."""
        live = self.current()
        return [ModelVersion(v, self.directory / f"{v}.skops", self.info(v), v == live) for v in self._versions()]

    def add(self, model: Any, info: Mapping[str, Any], *, promote: bool = False) -> str:
        """Store ``model`` as the next version with ``info``; promote it when asked. Returns the version."""
        from assoc_ai_core.persistence import save_model

        private_dir(self.directory)
        existing = self._versions()
        number = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{number:04d}"
        path = save_model(model, self.directory / f"{version}.skops")  # written atomically by save_model
        record = {"version": version, "model_metadata": _jsonable(getattr(model, "metadata_", {})), **dict(info),
                  "sha256": file_sha256(path)}
        self._write_record(version, record)
        if promote:
            self.promote(version)
        return version

    def replace(self, version: str, model: Any) -> str:
        """Rewrite the stored file of ``version`` on purpose (e.g. a vocabulary scrubbed by an erasure).

        The new digest is recorded, so the registry keeps loading it; returns that SHA-256.
        """
        from assoc_ai_core.persistence import save_model

        path = save_model(model, self.path(version))
        digest = file_sha256(path)
        self._write_record(version, {**self.info(version), "version": version, "sha256": digest})
        return digest

    def _write_record(self, version: str, record: Mapping[str, Any]) -> None:
        atomic_write(self.directory / f"{version}.json",
                     json.dumps(dict(record), ensure_ascii=False, indent=2, default=str))

    def promote(self, version: str) -> None:
        """Make ``version`` the live model."""
        self.path(version)
        atomic_write(self.directory / "current", version + "\n")

    def rollback(self, version: str) -> None:
        """Go back to an earlier ``version`` (the later ones are kept)."""
        self.promote(version)

    def load(self, version: str | None = None) -> tuple[Any, str]:
        """Load ``version`` (default: the live one) after checking its recorded digest; returns (model, version)."""
        version = version or self.current()
        if version is None:
            raise ModelError(tr(
                f"Aucun modèle dans {self.directory}. Entraînez-en un : assoc-ai train --from-mailbox --config …",
                f"No model in {self.directory}. Train one: assoc-ai train --from-mailbox --config …",
            ))
        from assoc_ai_core.persistence import build_model, read_model_file

        path = self.path(version)
        data = path.read_bytes()  # the bytes whose digest is checked are the bytes built
        digest, recorded = hashlib.sha256(data).hexdigest(), self.info(version).get("sha256")
        if recorded and digest != recorded:
            raise ModelError(tr(
                f"Le fichier du modèle {version} ({path}) a changé depuis son enregistrement : empreinte SHA-256 "
                f"{digest[:12]}…, {str(recorded)[:12]}… attendue. Il n'est pas chargé. Remettez en service une "
                "version intacte (assoc-ai model rollback VERSION ; voir assoc-ai model list) ou ré-importez un "
                "modèle sûr (assoc-ai retrain --config …, ou le fichier d'origine restauré).",
                f"The file of model {version} ({path}) changed since it was stored: SHA-256 {digest[:12]}…, "
                f"expected {str(recorded)[:12]}…. It is not loaded. Put an intact version back in service "
                "(assoc-ai model rollback VERSION; see assoc-ai model list) or re-import a safe model "
                "(assoc-ai retrain --config …, or the original file restored).",
            ))
        return build_model(read_model_file(path, data=data)), version


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return {}


# ============================================================================ retraining
