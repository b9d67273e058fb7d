"""Retraining with the corrections people made: train a candidate, compare it with the live model, promote or keep.

Above the registry and the triage job in the jobs layer: it reads corrections
from the state store, builds training data from the original data and the
corrections, and stores the candidate in the
:class:`~assoc_ai_core.jobs.registry.ModelRegistry`.

The gate, in order (each refusal says why and what to do):

1. **The original data.** The candidate learns from the original training data
   (``[training] data``, else the mailbox's category folders without the mail
   the model filed itself) *plus* the corrections, never from the corrections
   alone.  When that data holds less than half of what the live model learnt
   from, or misses one of its categories, retraining is refused.
2. **A held-out set that means something**: the most recent corrections
   (``[training] holdout_share``) and a fixed, seeded sample of the original
   data (:func:`~assoc_ai_core.jobs.examples.held_out_sample`); below
   ``MIN_HOLDOUT`` messages, retraining is refused.
3. **Not worse beyond the noise of that set**, on macro-F1 and on the share of
   mail routed automatically at the target precision, by a paired bootstrap
   (:func:`paired_bootstrap`); and never a candidate that drops a category the
   live model has.

After an erasure (:func:`~assoc_ai_core.jobs.retention.models_to_retrain`),
retraining runs whatever the number of corrections, and a candidate that keeps
every category goes live even inside the noise margin: the law asks that the
person's mail leave the live model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assoc_ai_core.api import predict, train
from assoc_ai_core.errors import ConfigError, ModelError
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.examples import held_out_sample, mailbox_census
from assoc_ai_core.jobs.preflight import build_connector, load_current_model
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.jobs.retention import clear_retrain_marks, drop_erased, model_sender_key, models_to_retrain
from assoc_ai_core.jobs.settings import TriageSettings, as_settings
from assoc_ai_core.jobs.state import StateStore, now_iso
from assoc_ai_core.mail.parsing import message_from_text
from assoc_ai_core.mail.sources import load_dataset

__all__ = ["MIN_HOLDOUT", "GateFigures", "RetrainResult", "Scored", "correction_examples", "paired_bootstrap", "retrain"]

log = logging.getLogger(__name__)

#: below this many held-out messages a comparison says nothing (one message is already ~3 points of accuracy)
MIN_HOLDOUT = 30
#: resamples of the paired bootstrap, its seed, and the one-sided level at which "worse" is believed
BOOTSTRAP_ROUNDS = 2000
SEED = 13
ALPHA = 0.05
#: the original data must hold at least this share of what the live model learnt from
MIN_ORIGINAL_SHARE = 0.5
#: how the original data's held-out sample is drawn; recorded with each version so a later gate knows
#: whether the live model has seen that sample (then a reference model is compared in its place)
HOLDOUT_RULE = f"seeded-stratified-v1:{SEED}"
TEST_NAME = "paired bootstrap, one-sided, 95 %"


@dataclass
class GateFigures:
    """Candidate and live model on the same held-out set, and the paired bootstrap of their differences."""

    n: int
    candidate_macro_f1: float
    current_macro_f1: float
    candidate_auto_share: float
    current_auto_share: float
    macro_f1_interval: tuple[float, float]  # 90 % interval of candidate − live (its lower 5 % tail is the test)
    auto_share_interval: tuple[float, float]
    macro_f1_p_value: float  # one-sided: share of resamples where the candidate is at least as good
    auto_share_p_value: float

    @property
    def worse(self) -> bool:
        """Worse beyond the noise of the set on either figure."""
        return self.macro_f1_p_value < ALPHA or self.auto_share_p_value < ALPHA


@dataclass
class RetrainResult:
    """What ``retrain`` did: the new version (if any), whether it went live, why, and the figures it decided on."""

    version: str | None
    promoted: bool
    reason: str
    n_train: int = 0
    n_corrections: int = 0
    n_holdout: int = 0
    candidate_accuracy: float | None = None
    current_accuracy: float | None = None
    current_version: str | None = None
    source: str | None = None
    n_holdout_corrections: int = 0
    n_holdout_original: int = 0
    compared_with: str | None = None  # "live" or "reference" (the live recipe without the held-out sample)
    test: str = TEST_NAME
    figures: GateFigures | None = None
    dropped_categories: list[str] = field(default_factory=list)
    after_erasure: bool = False

    def summary(self) -> str:
        """One paragraph for people."""
        if self.version is None:
            return self.reason
        verdict = tr("mise en service", "now live") if self.promoted else tr("gardée en réserve", "kept aside")
        head = tr(f"Version {self.version} ({verdict}) : {self.n_train} exemples dont "
                  f"{self.n_corrections - self.n_holdout_corrections} corrections.",
                  f"Version {self.version} ({verdict}): {self.n_train} examples including "
                  f"{self.n_corrections - self.n_holdout_corrections} corrections.")
        return f"{head} {_figures_text(self)} {self.reason}".replace("  ", " ")


def _figures_text(result: RetrainResult) -> str:
    f = result.figures
    if f is None:
        return ""
    live = result.current_version or "—"
    if result.compared_with == "reference":
        live = tr(f"{live}, mesurée par une référence entraînée sans ce jeu",
                  f"{live}, measured by a reference trained without this set")
    return tr(
        f"Sur {f.n} messages mis de côté ({result.n_holdout_corrections} corrections récentes, "
        f"{result.n_holdout_original} des données d'origine) : F1 macro {f.candidate_macro_f1:.2f} contre "
        f"{f.current_macro_f1:.2f} (en service : {live} ; écart [{f.macro_f1_interval[0]:+.2f} ; "
        f"{f.macro_f1_interval[1]:+.2f}], p = {f.macro_f1_p_value:.3f}) ; part automatique à la précision visée "
        f"{f.candidate_auto_share:.0%} contre {f.current_auto_share:.0%} (p = {f.auto_share_p_value:.3f}).",
        f"On {f.n} held-out messages ({result.n_holdout_corrections} recent corrections, "
        f"{result.n_holdout_original} from the original data): macro-F1 {f.candidate_macro_f1:.2f} vs "
        f"{f.current_macro_f1:.2f} (live: {live}; difference [{f.macro_f1_interval[0]:+.2f}, "
        f"{f.macro_f1_interval[1]:+.2f}], p = {f.macro_f1_p_value:.3f}); automatic share at the target precision "
        f"{f.candidate_auto_share:.0%} vs {f.current_auto_share:.0%} (p = {f.auto_share_p_value:.3f}).",
    )


# ============================================================================ the data
def correction_examples(corrections: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Training messages from recorded corrections (latest correction of each message wins), oldest first."""
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


@dataclass
class _Original:
    examples: list[Any]
    source: str
    left_out: int = 0  # mail in the category folders the model filed itself (not learnt from)


def _original_examples(settings: TriageSettings, *, exclude: set[str]) -> _Original:
    """The labelled mail the live model learnt from besides the corrections, and where it came from."""
    if settings.training_data is not None:
        return _Original(load_dataset(settings.training_data).labelled(), f"[training] data = {settings.training_data}")
    conn = build_connector(settings)
    conn.open()
    try:
        census = mailbox_census(settings, conn, exclude=exclude)
    finally:
        conn.close()
    return _Original(census.examples, "mailbox", census.left_out)


def _original_problem(original: _Original, training_labels: set[str], current: Any) -> str | None:
    """Why ``original`` cannot stand for the live model's training data (None when it can)."""
    meta = getattr(current, "metadata_", {}) or {} if current is not None else {}
    live_n = int(meta.get("n_train") or 0)
    live_labels = {str(c) for c in getattr(current, "classes_", [])}
    missing = sorted(live_labels - training_labels)
    labels = {str(m.label) for m in original.examples}
    if len(labels) >= 2 and len(original.examples) >= MIN_ORIGINAL_SHARE * live_n and not missing:
        return None
    where = (tr(f"les dossiers de catégories de la boîte (sans les {original.left_out} messages que le modèle "
                "a classés lui-même)", f"the mailbox's category folders (without the {original.left_out} messages "
                "the model filed itself)") if original.source == "mailbox" else original.source)
    found = tr(f"Données d'origine trouvées dans {where} : {len(original.examples)} messages, {len(labels)} catégories",
               f"Original data found in {where}: {len(original.examples)} messages, {len(labels)} categories")
    live = tr(f" ; le modèle en service a appris sur {live_n} messages, {len(live_labels)} catégories",
              f"; the live model learnt from {live_n} messages, {len(live_labels)} categories") if live_n else ""
    gap = tr(f" ; catégories sans exemple : {', '.join(missing)}", f"; categories without examples: "
             f"{', '.join(missing)}") if missing else ""
    return tr(
        f"Ré-entraînement refusé : il apprendrait presque seulement des corrections. {found}{live}{gap}. "
        "Indiquez les données d'entraînement d'origine dans la configuration : [training] data = \"chemin\" "
        "(un dossier par catégorie, Maildir, mbox, CSV ou JSONL), ou rangez des exemples dans les dossiers "
        "de catégories.",
        f"Retraining refused: it would learn from little more than the corrections. {found}{live}{gap}. "
        "Give the original training data in the configuration: [training] data = \"path\" "
        "(a folder per category, Maildir, mbox, CSV or JSONL), or file examples in the category folders.",
    )


# ============================================================================ the comparison
@dataclass
class Scored:
    """One model's answers on a set: category, calibrated probability, and whether it would act on its own."""

    label: np.ndarray
    confidence: np.ndarray
    auto: np.ndarray


def _score(model: Any, messages: Sequence[Any], sender_key: Any = None) -> Scored:
    preds = predict(model, list(messages), sender_key=sender_key)
    return Scored(np.array([str(p.label) for p in preds]), np.array([p.probability for p in preds], dtype=float),
                   np.array([p.decision == "auto" for p in preds], dtype=bool))


def _macro_f1(weights: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Macro-F1 per row of ``weights`` (message counts), over the categories present in that row's truth."""
    tp = weights @ (truth * pred)
    true_n, pred_n = weights @ truth, weights @ pred
    present = true_n > 0
    f1 = np.where(present, 2 * tp / np.where(present, true_n + pred_n, 1), 0.0)
    out: np.ndarray = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return out


def _auto_share(weights: np.ndarray, scored: Scored, correct: np.ndarray, target: float) -> np.ndarray:
    """Share of mail a model routes itself (its own threshold), within the most confident group at ``target``.

    The largest group of its most confident automatic decisions whose precision
    reaches ``target``: a model routing nothing scores 0, one routing more
    than it gets right is credited only with the part that meets the target.
    """
    order = np.argsort(-scored.confidence, kind="stable")
    w = weights[:, order]
    cum_n = np.cumsum(w, axis=1)
    cum_ok = np.cumsum(w * correct[order], axis=1)
    reach = (cum_ok >= target * cum_n - 1e-9) & scored.auto[order][None, :] & (cum_n > 0)
    share: np.ndarray = np.where(reach, cum_n, 0).max(axis=1) / np.maximum(weights.sum(axis=1), 1)
    return share


def paired_bootstrap(truth: Sequence[str], candidate: Scored, current: Scored, *, target: float,
                     rounds: int = BOOTSTRAP_ROUNDS, seed: int = SEED) -> GateFigures:
    """Candidate against live model on one set: both figures, and the paired bootstrap of their differences.

    Why a paired bootstrap (not McNemar): macro-F1 and the automatic share at
    the target precision are not sums of per-message right/wrong outcomes
    (McNemar's only input); resampling messages with both models' answers kept
    together gives the noise of the *difference* directly, and the pairing
    removes what both models find easy or hard.
    """
    y = np.asarray(truth, dtype=str)
    labels = np.unique(np.concatenate([y, candidate.label, current.label]))
    t, pc, pl = (_onehot(v, labels) for v in (y, candidate.label, current.label))
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(len(y)), rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=rounds)])
    f1 = _macro_f1(weights, t, pc) - _macro_f1(weights, t, pl)
    share_c = _auto_share(weights, candidate, candidate.label == y, target)
    share_l = _auto_share(weights, current, current.label == y, target)
    d_share = share_c - share_l
    return GateFigures(
        n=len(y), candidate_macro_f1=float(_macro_f1(weights[:1], t, pc)[0]),
        current_macro_f1=float(_macro_f1(weights[:1], t, pl)[0]),
        candidate_auto_share=float(share_c[0]), current_auto_share=float(share_l[0]),
        macro_f1_interval=_interval(f1[1:]), auto_share_interval=_interval(d_share[1:]),
        macro_f1_p_value=float((f1[1:] >= -1e-12).mean()), auto_share_p_value=float((d_share[1:] >= -1e-12).mean()),
    )


def _onehot(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out: np.ndarray = (values[:, None] == labels[None, :]).astype(float)
    return out


def _interval(diffs: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(diffs, [ALPHA, 1 - ALPHA])
    return float(low), float(high)


def _accuracy(scored: Scored, truth: Sequence[str]) -> float:
    return float((scored.label == np.asarray(truth, dtype=str)).mean())


# ============================================================================ retraining
@dataclass
class _Plan:
    """The sets one retraining works with."""

    original: list[Any]  # the original data the candidate learns from (without the held-out sample)
    corrections: list[Any]  # the corrections it learns from (without the recent ones held out)
    holdout: list[Any]
    n_holdout_corrections: int
    n_corrections: int
    source: str

    @property
    def train(self) -> list[Any]:
        """Everything the candidate learns from."""
        return self.original + self.corrections


def retrain(config: Any, *, on_stored: Callable[[Any, Path, str], Any] | None = None) -> RetrainResult:
    """Train a candidate on the original data plus corrections; promote it only if it is not worse.

    Every refusal and every decision is logged and returned with its figures;
    the candidate is stored either way once trained (to inspect, or to promote
    by hand with ``assoc-ai model rollback``).
    """
    settings = as_settings(config)
    result = _retrain(settings, on_stored)
    log.info("retrain: %s", json.dumps(dataclasses.asdict(result), ensure_ascii=False, default=str))
    return result


def _retrain(settings: TriageSettings, on_stored: Callable[[Any, Path, str], Any] | None) -> RetrainResult:
    if not settings.state_path.is_file():
        return RetrainResult(None, False, tr("Pas encore de fichier d'état : lancez d'abord le tri.",
                                             "No state file yet: run the triage first."))
    erasure = bool(models_to_retrain(settings))
    try:
        current, current_version = load_current_model(settings)
    except (ConfigError, ModelError) as why:
        # no live model, or one that no longer loads (changed file): the candidate is the only model there can be
        current, current_version, unloadable = None, None, str(why)
    else:
        unloadable = ""
    plan = _plan(settings, current, erasure)
    if isinstance(plan, RetrainResult):
        return plan
    key = model_sender_key(settings)
    candidate = train(plan.train, target_precision=settings.target_precision, sender_key=key)
    registry = ModelRegistry(settings.models_dir)
    base = dict(current_version=current_version, source=plan.source, n_train=len(plan.train),
                n_corrections=plan.n_corrections, n_holdout=len(plan.holdout), after_erasure=erasure,
                n_holdout_corrections=plan.n_holdout_corrections,
                n_holdout_original=len(plan.holdout) - plan.n_holdout_corrections)
    result = _decide(settings, candidate, current, registry.info(current_version or ""), plan, base, key)
    if unloadable and registry.list():
        result.reason = tr(f"Le modèle en service ne se charge pas ({unloadable}) : la candidate le remplace, "
                           "sans comparaison possible.", f"The live model does not load ({unloadable}): the "
                           "candidate replaces it, with no comparison possible.")
    if not registry.list() and current is not None and current_version and current_version.startswith("file:"):
        # keep the hand-trained model as v0001 so a rollback to it stays possible
        registry.add(current, {"created_at": now_iso(), "source": f"imported {settings.model_path}",
                               "n_train": getattr(current, "metadata_", {}).get("n_train")}, promote=True)
        result.current_version = registry.current()
    info = {"created_at": now_iso(), "source": f"{plan.source} + corrections", "n_train": len(plan.train),
            "parent": result.current_version, "evaluation": _evaluation_record(result)}
    result.version = registry.add(candidate, info, promote=result.promoted)
    if result.promoted:
        clear_retrain_marks(settings, result.version)
    if on_stored is not None:  # e.g. the model card, written by the layer that owns it
        on_stored(candidate, registry.path(result.version), result.version)
    return result


def _plan(settings: TriageSettings, current: Any, erasure: bool) -> _Plan | RetrainResult:
    """The training and held-out sets, or the refusal that says what is missing."""
    with StateStore(settings.state_path) as state:
        corrections = correction_examples(state.corrections(settings.instance))
        auto = state.auto_keys(settings.instance)
    n = len(corrections)
    if n < settings.min_corrections and not erasure:  # after an erasure, retraining is due whatever the count
        return _refusal(tr(
            f"Pas assez de corrections pour ré-entraîner ({n} sur {settings.min_corrections} nécessaires).",
            f"Not enough corrections to retrain ({n} of {settings.min_corrections} needed).",
        ), n_corrections=n)
    n_hold = max(1, round(n * settings.holdout_share)) if n else 0
    hold_corr, train_corr = corrections[n - n_hold:], corrections[:n - n_hold]
    corrected = {m.key.split(":", 1)[1] for m in corrections}
    original = _original_examples(settings, exclude=auto | corrected)
    # a corrected message now sits in its new category folder: learn it once, from the correction only
    original.examples = drop_erased([m for m in original.examples if m.key not in corrected], settings)
    labels = {str(m.label) for m in original.examples + train_corr}
    problem = _original_problem(original, labels, current)
    if problem is not None:
        return _refusal(problem, n_corrections=n, source=original.source)
    wanted = max(round(len(original.examples) * settings.holdout_share), MIN_HOLDOUT - len(hold_corr))
    hold_orig, train_orig = held_out_sample(original.examples, min(wanted, len(original.examples) // 2), seed=SEED)
    holdout = hold_corr + hold_orig
    if len(holdout) < MIN_HOLDOUT:
        return _refusal(tr(
            f"Ré-entraînement refusé : le jeu de comparaison n'aurait que {len(holdout)} messages "
            f"({len(hold_corr)} corrections récentes, {len(hold_orig)} des données d'origine), il en faut au moins "
            f"{MIN_HOLDOUT} pour qu'une différence veuille dire quelque chose. Ajoutez des exemples étiquetés "
            f"([training] data ou dossiers de catégories ; au moins {2 * MIN_HOLDOUT} messages).",
            f"Retraining refused: the comparison set would hold only {len(holdout)} messages "
            f"({len(hold_corr)} recent corrections, {len(hold_orig)} from the original data); at least {MIN_HOLDOUT} "
            f"are needed for a difference to mean something. Add labelled examples ([training] data or the "
            f"category folders; at least {2 * MIN_HOLDOUT} messages).",
        ), n_corrections=n, source=original.source, n_holdout=len(holdout))
    return _Plan(train_orig, train_corr, holdout, len(hold_corr), n, original.source)


def _refusal(reason: str, **figures: Any) -> RetrainResult:
    log.warning(reason)
    return RetrainResult(None, False, reason, **figures)


def _decide(settings: TriageSettings, candidate: Any, current: Any, current_info: Mapping[str, Any], plan: _Plan,
            base: dict[str, Any], key: Any = None) -> RetrainResult:
    """Compare the candidate with the live model on the held-out set and say whether it goes live."""
    truth = [str(m.label) for m in plan.holdout]
    cand = _score(candidate, plan.holdout, key)
    if current is None:
        return RetrainResult(None, True, tr("Aucun modèle en service : elle le devient.",
                                            "No live model: it becomes live."),
                             candidate_accuracy=_accuracy(cand, truth), **base)
    compared_with, comparator = "live", current
    if current_info.get("evaluation", {}).get("holdout_rule") != HOLDOUT_RULE:
        # the live model may have learnt from the held-out sample: its own score there would flatter it, so the
        # live recipe is retrained on exactly the candidate's original data (without corrections) to stand for it
        compared_with = "reference"
        live_target = float(getattr(current, "metadata_", {}).get("target_precision", settings.target_precision))
        comparator = (candidate if not plan.corrections and live_target == settings.target_precision
                      else train(plan.original, target_precision=live_target, sender_key=key))
    live = _score(comparator, plan.holdout, key)
    figures = paired_bootstrap(truth, cand, live, target=settings.target_precision)
    dropped = sorted({str(c) for c in current.classes_} - {str(c) for c in candidate.classes_})
    promoted = not dropped and (not figures.worse or base["after_erasure"])
    return RetrainResult(None, promoted, _reason(figures, dropped, base["after_erasure"]),
                         candidate_accuracy=_accuracy(cand, truth), current_accuracy=_accuracy(live, truth),
                         compared_with=compared_with, figures=figures, dropped_categories=dropped, **base)


def _reason(figures: GateFigures, dropped: list[str], erasure: bool) -> str:
    if dropped:
        return tr(f"Elle perd des catégories que la version en service connaît ({', '.join(dropped)}) : la version "
                  "en service est gardée. Ajoutez des exemples de ces catégories puis relancez.",
                  f"It drops categories the live version knows ({', '.join(dropped)}): the live version is kept. "
                  "Add examples of these categories, then run it again.")
    if figures.worse and erasure:
        return tr("Elle est moins bonne au-delà du bruit, mais elle est mise en service car un effacement demande "
                  "que le modèle en service n'ait plus appris sur les messages de la personne.",
                  "It is worse beyond the noise, but goes live because an erasure requires that the live model "
                  "no longer learnt from the person's mail.")
    if figures.worse:
        return tr("Elle est moins bonne au-delà du bruit de ce jeu : la version en service est gardée "
                  "(assoc-ai model rollback pour choisir).",
                  "It is worse beyond the noise of this set: the live version is kept "
                  "(assoc-ai model rollback to choose).")
    return tr("Elle n'est pas moins bonne que la version en service au-delà du bruit de ce jeu.",
              "It is not worse than the live version beyond the noise of this set.")


def _evaluation_record(result: RetrainResult) -> dict[str, Any]:
    """What the registry keeps about the decision (the held-out rule tells a later gate what this model never saw)."""
    return {"holdout": "recent corrections + seeded sample of the original data", "holdout_rule": HOLDOUT_RULE,
            "n_holdout": result.n_holdout, "n_holdout_corrections": result.n_holdout_corrections,
            "n_holdout_original": result.n_holdout_original, "compared_with": result.compared_with,
            "test": TEST_NAME, "figures": dataclasses.asdict(result.figures) if result.figures else None,
            "candidate_accuracy": result.candidate_accuracy, "current_accuracy": result.current_accuracy,
            "dropped_categories": result.dropped_categories, "after_erasure": result.after_erasure,
            "promoted": result.promoted, "reason": result.reason}
