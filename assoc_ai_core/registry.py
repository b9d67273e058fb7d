"""Model versions of a triage job: keep every model, say which one is live, roll back.

Layout (a ``models/`` folder next to the state file unless ``[model] registry``
says otherwise)::

    models/
      v0001.skops      the model (skops format, no pickle)
      v0001.json       how it was made and how it scored (evaluation, metadata)
      v0002.skops
      v0002.json
      current          one line: the live version ("v0002")

``promote`` and ``rollback`` only rewrite ``current`` (atomically), so the job
always loads a complete model.  Nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, ModelError
from .i18n import tr

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


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: str | os.PathLike[str]) -> str:
    """Short SHA-256 of a file, used to name a model that is not in a registry."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


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
            return json.loads((self.directory / f"{version}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def list(self) -> list[ModelVersion]:
        """Every stored version, oldest first."""
        live = self.current()
        return [ModelVersion(v, self.directory / f"{v}.skops", self.info(v), v == live) for v in self._versions()]

    def add(self, model: Any, info: Mapping[str, Any], *, promote: bool = False) -> str:
        """Store ``model`` as the next version with ``info``; promote it when asked. Returns the version."""
        from .persistence import save_model

        self.directory.mkdir(parents=True, exist_ok=True)
        existing = self._versions()
        number = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{number:04d}"
        save_model(model, self.directory / f"{version}.skops")  # written atomically by save_model
        record = {"version": version, "model_metadata": _jsonable(getattr(model, "metadata_", {})), **dict(info)}
        _atomic_write(self.directory / f"{version}.json",
                      json.dumps(record, ensure_ascii=False, indent=2, default=str).encode("utf-8"))
        if promote:
            self.promote(version)
        return version

    def promote(self, version: str) -> None:
        """Make ``version`` the live model."""
        self.path(version)
        _atomic_write(self.directory / "current", (version + "\n").encode("ascii"))

    def rollback(self, version: str) -> None:
        """Go back to an earlier ``version`` (the later ones are kept)."""
        self.promote(version)

    def load(self, version: str | None = None) -> tuple[Any, str]:
        """Load ``version`` (default: the live one); returns (model, version)."""
        from .persistence import load_model

        version = version or self.current()
        if version is None:
            raise ModelError(tr(
                f"Aucun modèle dans {self.directory}. Entraînez-en un : assoc-ai train --from-mailbox --config …",
                f"No model in {self.directory}. Train one: assoc-ai train --from-mailbox --config …",
            ))
        return load_model(self.path(version)), version


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return {}


# ============================================================================ retraining
@dataclass
class RetrainResult:
    """What ``retrain`` did: the new version (if any), whether it went live, and why."""

    version: str | None
    promoted: bool
    reason: str
    n_train: int = 0
    n_corrections: int = 0
    n_holdout: int = 0
    candidate_accuracy: float | None = None
    current_accuracy: float | None = None
    current_version: str | None = None

    def summary(self) -> str:
        """One paragraph for people."""
        if self.version is None:
            return self.reason
        cand = f"{self.candidate_accuracy:.0%}" if self.candidate_accuracy is not None else "—"
        cur = f"{self.current_accuracy:.0%}" if self.current_accuracy is not None else "—"
        verdict = tr("mise en service", "now live") if self.promoted else tr("gardée en réserve", "kept aside")
        return tr(
            f"Version {self.version} ({verdict}) : {self.n_train} exemples dont {self.n_corrections} corrections ; "
            f"sur les {self.n_holdout} corrections les plus récentes, candidate {cand}, "
            f"en service ({self.current_version or '—'}) {cur}. {self.reason}",
            f"Version {self.version} ({verdict}): {self.n_train} examples including {self.n_corrections} corrections; "
            f"on the {self.n_holdout} most recent corrections, candidate {cand}, "
            f"live ({self.current_version or '—'}) {cur}. {self.reason}",
        )


def _accuracy(model: Any, messages: list[Any]) -> float:
    from .api import predict

    preds = predict(model, messages)
    return sum(1 for p, m in zip(preds, messages) if p.label == m.label) / len(messages)


def correction_examples(corrections: list[Mapping[str, Any]]) -> list[Any]:
    """Training messages from recorded corrections (latest correction of each message wins), oldest first."""
    from .parsing import message_from_text

    latest: dict[str, Mapping[str, Any]] = {}
    for c in corrections:
        if c.get("text"):
            latest.pop(c["key"], None)  # re-insert so the order follows the latest correction
            latest[c["key"]] = c
    out = []
    for key, c in latest.items():
        try:
            data = json.loads(c["text"])
        except (TypeError, ValueError):
            continue
        out.append(message_from_text(str(data.get("text", "")), subject=str(data.get("subject", "")),
                                     label=str(c["to_category"]), key=f"correction:{key}"))
    return out


def retrain(config: Any) -> RetrainResult:
    """Train a candidate on the original data plus corrections; promote it only if it is not worse.

    The most recent corrections (``[training] holdout_share``, at least one)
    are held out: the candidate is trained without them, then candidate and
    live model are scored on them.  The candidate is stored either way (so it
    can be inspected or promoted by hand) and goes live only when its accuracy
    is at least the live model's.
    """
    from .api import train
    from .sources import load_dataset
    from .state import StateStore, now_iso
    from .triage import as_settings, build_connector, collect_mailbox_examples, load_current_model

    settings = as_settings(config)
    registry = ModelRegistry(settings.models_dir)
    if not settings.state_path.is_file():
        return RetrainResult(None, False, tr("Pas encore de fichier d'état : lancez d'abord le tri.",
                                             "No state file yet: run the triage first."))
    with StateStore(settings.state_path) as state:
        corrections = state.corrections(settings.instance)
        auto = state.auto_keys(settings.instance)
    examples = correction_examples(corrections)
    if len(examples) < settings.min_corrections:
        return RetrainResult(None, False, tr(
            f"Pas assez de corrections pour ré-entraîner ({len(examples)} sur {settings.min_corrections} nécessaires).",
            f"Not enough corrections to retrain ({len(examples)} of {settings.min_corrections} needed).",
        ), n_corrections=len(examples))
    n_hold = max(1, round(len(examples) * settings.holdout_share))
    holdout, train_corr = examples[-n_hold:], examples[:-n_hold]
    corrected_keys = {m.key.split(":", 1)[1] for m in examples}
    if settings.training_data is not None:
        base = load_dataset(settings.training_data).labelled()
        source = str(settings.training_data)
    else:
        conn = build_connector(settings)
        conn.open()
        try:
            base = collect_mailbox_examples(settings, conn, exclude=auto | corrected_keys)
        finally:
            conn.close()
        source = "mailbox"
    # a corrected message now sits in its new category folder: learn it once, from the correction only
    base = [m for m in base if m.key not in corrected_keys]
    from .privacy import clear_retrain_marks, drop_erased

    base = drop_erased(base, settings)  # people who asked to be forgotten are not learnt again
    candidate = train(base + train_corr, target_precision=settings.target_precision)
    try:
        current, current_version = load_current_model(settings)
    except (ConfigError, ModelError):
        current, current_version = None, None
    cand_acc = _accuracy(candidate, holdout)
    cur_acc = _accuracy(current, holdout) if current is not None else None
    promote = cur_acc is None or cand_acc >= cur_acc
    if not registry.list() and current is not None and current_version and current_version.startswith("file:"):
        # keep the hand-trained model as v0001 so a rollback to it stays possible
        registry.add(current, {"created_at": now_iso(), "source": f"imported {settings.model_path}",
                               "n_train": getattr(current, "metadata_", {}).get("n_train")}, promote=True)
        current_version = registry.current()
    info = {
        "created_at": now_iso(), "source": f"{source} + corrections", "n_train": len(base) + len(train_corr),
        "parent": current_version,
        "evaluation": {"holdout": "most recent corrections", "n_holdout": len(holdout),
                       "candidate_accuracy": cand_acc, "current_accuracy": cur_acc, "promoted": promote},
    }
    version = registry.add(candidate, info, promote=promote)
    clear_retrain_marks(settings, version)
    from .modelcard import card_beside_model

    card_beside_model(candidate, registry.path(version), version=version)
    reason = (tr("Elle n'est pas moins bonne que la version en service.", "It is not worse than the live version.")
              if promote and cur_acc is not None else
              tr("Aucun modèle en service : elle le devient.", "No live model: it becomes live.") if promote else
              tr("Elle est moins bonne : la version en service est gardée (assoc-ai model rollback pour choisir).",
                 "It is worse: the live version is kept (assoc-ai model rollback to choose)."))
    return RetrainResult(version, promote, reason, n_train=len(base) + len(train_corr), n_corrections=len(examples),
                         n_holdout=len(holdout), candidate_accuracy=cand_acc, current_accuracy=cur_acc,
                         current_version=current_version)
