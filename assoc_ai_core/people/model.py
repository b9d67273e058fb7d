"""The people model: a calibrated classifier whose per-person explanation is exact.

Default (``kind="logistic"``): counts and amounts enter as ``log(1 + x)``,
everything is standardised, a logistic regression is fitted, and its scores
are calibrated by Platt scaling on out-of-fold predictions
(``CalibratedClassifierCV(method="sigmoid", ensemble=False)``, folds grouped
by person).  Platt scaling is affine in the logistic score, so the calibrated
log-odds are still a sum over features: each feature's share
(*contribution*) is exact, and contributions plus the baseline add up to the
probability shown.

``kind="boosting"`` (histogram gradient boosting, isotonic calibration) may
rank a little better on large files; its per-person factors are then
*what-if* effects (the change in log-odds when one feature is set to its
typical value), computed from the model but not additive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from assoc_ai_core.errors import DataError, ModelError
from assoc_ai_core.i18n import percent, tr
from assoc_ai_core.people.features import BY_NAME, NEVER_MONTHS

__all__ = ["PeopleModel", "Explanation", "Factor", "describe_factor", "sentence", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_EPS = 1e-9


@dataclass(frozen=True)
class Factor:
    """One reason behind a score: the feature, its value, its push in log-odds and a phrase."""

    feature: str
    value: float
    contribution: float
    text: str

    @property
    def sign(self) -> str:
        """``+`` when the factor raises the probability, ``−`` when it lowers it."""
        return "+" if self.contribution > 0 else "−"


@dataclass
class Explanation:
    """Why a person got a probability: baseline, the largest factors, and a sentence."""

    person_id: str
    task: str
    probability: float
    baseline: float
    factors: list[Factor] = field(default_factory=list)
    sentence: str = ""
    exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "person_id": self.person_id, "task": self.task, "probability": round(self.probability, 4),
            "baseline": round(self.baseline, 4), "exact": self.exact, "sentence": self.sentence,
            "factors": [
                {"feature": f.feature, "value": f.value, "contribution": round(f.contribution, 4), "text": f.text}
                for f in self.factors
            ],
        }


_NEGATIVE = {
    "never_gave": ("a déjà donné", "has given before"),
    "lybunt": ("pas en rupture depuis l'an dernier", "not lapsed since last year"),
    "sybunt": ("pas un ancien donateur perdu", "not a long-lapsed donor"),
    "first_year_donor": ("pas un nouveau donateur", "not a new donor"),
    "repeat_donor": ("n'a pas donné les deux dernières années", "did not give in both of the last two years"),
    "upgrade": ("dons pas en hausse", "giving not up"),
    "downgrade": ("dons pas en baisse", "giving not down"),
    "recurring_active": ("pas de don régulier en cours", "no active regular gift"),
    "member_this_year": ("pas d'adhésion sur les 12 derniers mois", "no membership in the last 12 months"),
    "member_lapsed": ("pas d'adhésion perdue", "no lapsed membership"),
    "has_email": ("pas de courriel connu", "no e-mail on file"),
    "has_phone": ("pas de téléphone connu", "no phone on file"),
    "skill_any": ("aucune compétence demandée", "none of the skills asked"),
    "same_postcode": ("pas la même commune", "not the same town"),
    "same_department": ("pas le même département", "not the same département"),
    "did_mission_before": ("n'a pas encore fait cette mission", "has not done this mission yet"),
}
_NEVER = {
    "months_since_last_gift": ("aucun don connu", "no gift on record"),
    "months_since_membership": ("jamais adhérent", "never a member"),
    "months_since_event": ("jamais venu à un événement", "never came to an event"),
    "months_since_volunteering": ("jamais bénévole", "never volunteered"),
}
_PAIR = {
    "skill_match": ("{p} des compétences demandées", "{p} of the skills asked"),
    "skill_any": ("a au moins une compétence demandée", "has at least one skill asked"),
    "same_postcode": ("même commune", "same town"),
    "same_department": ("même département", "same département"),
    "weekday_match": ("disponible {p} des jours de la mission", "available on {p} of the mission's days"),
    "did_mission_before": ("a déjà fait cette mission", "did this mission before"),
    "hours_12m": ("{v:.0f} h de bénévolat sur 12 mois", "{v:.0f} volunteer hour(s) in 12 months"),
    "missions_done": ("{v:.0f} mission(s) déjà faite(s)", "{v:.0f} mission(s) done"),
    "months_since_volunteering": ("bénévole il y a {v:.0f} mois", "volunteered {v:.0f} months ago"),
}


def describe_factor(feature: str, value: float, lang: str | None = None, *, as_of_year: int | None = None) -> str:
    """The phrase for one feature value, in French or English (``"3 don(s) sur 24 mois"``)."""
    fr_en: tuple[str, str]
    if feature in _NEVER and value >= NEVER_MONTHS - 1e-6:
        fr_en = _NEVER[feature]
        return tr(fr_en[0], fr_en[1], lang)
    if feature.startswith("months_since") and value < 1:
        info = BY_NAME.get(feature)
        if info is not None and "il y a {v:.0f} mois" in info.fr:
            fr, en = info.fr.replace("il y a {v:.0f} mois", "ce mois-ci"), info.en.replace("{v:.0f} months ago", "this month")
            return tr(fr, en, lang)
    if feature == "member_years":
        if value <= 0:
            return tr("pas adhérent", "not a member", lang)
        year = (as_of_year or 0) - int(round(value))
        if as_of_year:
            return tr(f"adhérent depuis {year}", f"member since {year}", lang)
        return tr(f"adhérent depuis {value:.0f} an(s)", f"member for {value:.0f} year(s)", lang)
    if feature in _NEGATIVE and value < 0.5:
        fr_en = _NEGATIVE[feature]
        return tr(fr_en[0], fr_en[1], lang)
    if feature in _PAIR:
        fr, en = _PAIR[feature]
        p = percent(value, lang)
        return tr(fr.format(v=value, p=p), en.format(v=value, p=p), lang)
    info = BY_NAME.get(feature)
    if info is None:
        return f"{feature} = {value:g}"
    return tr(info.fr, info.en, lang).format(v=value, y=value)


def _threads(n_rows: int) -> Any:
    """One OpenMP thread for small tables: tree models on a few thousand rows gain nothing from threads,
    and on a busy machine spinning threads can make them a hundred times slower."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp") if n_rows < 100_000 else nullcontext()


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=float)


class PeopleModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type hints: its bases are Any
    """A calibrated classifier for one people task, with exact linear explanations.

    Parameters
    ----------
    task: the task name (``donor-propensity``, ``membership-churn``...), kept for reports.
    features: names of the columns used, in order; None uses every column given to ``fit``.
    log_features: columns entered as ``log(1 + max(x, 0))`` (counts, amounts).
    kind: ``"logistic"`` (exact explanations) or ``"boosting"``.
    C: inverse regularisation strength of the logistic regression.
    n_splits: folds of the calibration (grouped by person when groups are given).
    """

    def __init__(
        self,
        task: str = "donor-propensity",
        features: Sequence[str] | None = None,
        log_features: Sequence[str] = (),
        kind: str = "logistic",
        C: float = 0.3,
        n_splits: int = 5,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.features = features
        self.log_features = log_features
        self.kind = kind
        self.C = C
        self.n_splits = n_splits
        self.random_state = random_state

    # -- saving ----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """State for skops: the (large, nested) metadata travels as one JSON string."""
        import json

        state = dict(super().__getstate__())
        if "metadata_" in state:
            state["metadata_json_"] = json.dumps(state.pop("metadata_"), ensure_ascii=False, default=str)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`__getstate__`."""
        import json

        state = dict(state)
        if "metadata_json_" in state:
            state["metadata_"] = json.loads(state.pop("metadata_json_"))
        super().__setstate__(state)

    # -- fitting ---------------------------------------------------------------

    def _matrix(self, X: Any) -> np.ndarray:
        cols = list(self.features_)
        if hasattr(X, "columns"):
            missing = [c for c in cols if c not in X.columns]
            if missing:
                raise DataError(
                    tr(f"Colonnes manquantes pour le modèle : {', '.join(missing)}.",
                       f"Columns missing for the model: {', '.join(missing)}.")
                )
            M: np.ndarray = X[cols].to_numpy(dtype=float, copy=True)
        else:
            M = np.array(X, dtype=float, copy=True)
            if M.ndim != 2 or M.shape[1] != len(cols):
                raise DataError(tr(f"Le modèle attend {len(cols)} colonnes ({', '.join(cols)}), reçu {M.shape}.",
                                   f"The model expects {len(cols)} columns ({', '.join(cols)}), got {M.shape}."))
        M = np.nan_to_num(M, nan=0.0, posinf=0.0, neginf=0.0)
        for j, name in enumerate(cols):
            if name in set(self.log_features):
                M[:, j] = np.log1p(np.maximum(M[:, j], 0.0))
        return M

    def fit(self, X: Any, y: Sequence[int], groups: Sequence[Any] | None = None) -> PeopleModel:
        """Fit and calibrate on ``X`` (DataFrame or array) and 0/1 labels ``y``."""
        if self.features is not None:
            self.features_ = list(self.features)
        elif hasattr(X, "columns"):
            self.features_ = [str(c) for c in X.columns]
        else:
            self.features_ = [f"x{j}" for j in range(np.asarray(X).shape[1])]
        Z = self._matrix(X)
        target = np.asarray(y, dtype=int)
        classes = np.unique(target)
        if len(classes) != 2:
            raise DataError(
                tr(
                    "Il faut des exemples positifs et négatifs pour apprendre (par ex. des personnes qui ont "
                    "donné et d'autres non dans la période). Élargissez la période ou vérifiez les dates.",
                    "Learning needs positive and negative examples (e.g. people who gave and others who did not "
                    "in the period). Widen the period or check the dates.",
                )
            )
        n_pos = int(target.sum())
        folds = max(2, min(self.n_splits, n_pos, len(target) - n_pos))
        if groups is not None and len(set(groups)) >= folds:
            splits = list(GroupKFold(n_splits=folds).split(Z, target, np.asarray(groups)))
        else:
            splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state).split(Z, target))
        if self.kind == "logistic":
            base = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=self.C, max_iter=2000))])
            method = "sigmoid"
        elif self.kind == "boosting":
            base = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.06, max_leaf_nodes=15,
                                                  l2_regularization=1.0, random_state=self.random_state)
            method = "isotonic" if len(target) > 2000 else "sigmoid"
        else:
            raise ModelError(tr(f"Type de modèle inconnu : {self.kind} (logistic ou boosting).",
                                f"Unknown model kind: {self.kind} (logistic or boosting)."))
        with _threads(len(target)):
            self.calibrated_ = CalibratedClassifierCV(base, method=method, cv=splits, ensemble=False).fit(Z, target)
        self.calibrated_.cv = len(splits)  # the fold indices are not needed any more; keep the saved file small
        self.classes_ = classes
        self.typical_ = np.median(Z, axis=0)
        self.n_train_ = int(len(target))
        self.base_rate_ = float(target.mean())
        if self.kind == "logistic":
            self._fit_decomposition(Z)
        return self

    def _fit_decomposition(self, Z: np.ndarray) -> None:
        """Recover the affine map score → calibrated log-odds, so contributions can be computed exactly."""
        pipe = self.calibrated_.calibrated_classifiers_[0].estimator
        scaler, clf = pipe.named_steps["scale"], pipe.named_steps["clf"]
        f = pipe.decision_function(Z)
        p = self.calibrated_.predict_proba(Z)[:, 1]
        keep = (p > 1e-7) & (p < 1 - 1e-7)
        if keep.sum() < 2 or np.ptp(f[keep]) < 1e-12:
            slope, intercept = 1.0, 0.0
        else:
            slope, intercept = np.polyfit(f[keep], _logit(p[keep]), 1)
        scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
        self.weights_ = slope * clf.coef_[0] / scale  # log-odds per unit of the (log-)transformed feature
        self.center_ = scaler.mean_.copy()
        self.baseline_logit_ = float(slope * clf.intercept_[0] + intercept)

    # -- prediction ------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2)."""
        check_is_fitted(self, "calibrated_")
        Z = self._matrix(X)
        if self.kind == "logistic":
            return np.asarray(self.calibrated_.predict_proba(Z), dtype=float)
        with _threads(len(Z)):
            return np.asarray(self.calibrated_.predict_proba(Z), dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        """0/1 at the model's threshold (``threshold_``, default 0.5)."""
        return (self.predict_proba(X)[:, 1] >= getattr(self, "threshold_", 0.5)).astype(int)

    def contributions(self, X: Any) -> tuple[float, np.ndarray]:
        """Baseline log-odds and the per-feature push of each row, shape (n, features).

        Logistic models: exact, ``baseline + row.sum() == logit(probability)``.
        Boosting: what-if effects (feature set to its median), not additive.
        """
        check_is_fitted(self, "calibrated_")
        Z = self._matrix(X)
        if self.kind == "logistic":
            return self.baseline_logit_, (Z - self.center_) * self.weights_
        with _threads(len(Z)):
            full = _logit(self.calibrated_.predict_proba(Z)[:, 1])
            out = np.zeros_like(Z)
            for j in range(Z.shape[1]):
                Zj = Z.copy()
                Zj[:, j] = self.typical_[j]
                out[:, j] = full - _logit(self.calibrated_.predict_proba(Zj)[:, 1])
            typical = float(_logit(self.calibrated_.predict_proba(self.typical_[None, :])[:, 1])[0])
        return typical, out

    def global_weights(self) -> dict[str, float]:
        """Log-odds change for one standard deviation of each feature (logistic), sorted by size."""
        check_is_fitted(self, "calibrated_")
        if self.kind != "logistic":
            return {}
        pipe = self.calibrated_.calibrated_classifiers_[0].estimator
        std = np.where(pipe.named_steps["scale"].scale_ == 0, 0.0, pipe.named_steps["scale"].scale_)
        w = {name: float(self.weights_[j] * std[j]) for j, name in enumerate(self.features_)}
        return dict(sorted(w.items(), key=lambda kv: -abs(kv[1])))

    def explain(
        self,
        X: Any,
        ids: Sequence[str] | None = None,
        *,
        top_k: int = 3,
        lang: str | None = None,
        as_of_year: int | None = None,
        raw: Any = None,
    ) -> list[Explanation]:
        """One :class:`Explanation` per row: probability, largest factors (both signs) and a sentence.

        ``raw`` (same rows, untransformed values) is what the phrases quote;
        by default the values given in ``X``.
        """
        probs = self.predict_proba(X)[:, 1]
        base, contrib = self.contributions(X)
        values = raw if raw is not None else X
        V = values[list(self.features_)].to_numpy(dtype=float) if hasattr(values, "columns") else np.asarray(values, dtype=float)
        ids = list(ids) if ids is not None else (list(map(str, X.index)) if hasattr(X, "index") else [str(i) for i in range(len(probs))])
        out = []
        for i, pid in enumerate(ids):
            order = np.argsort(-np.abs(contrib[i]))
            factors = []
            for j in order[:top_k]:
                if abs(contrib[i, j]) < 0.05:  # a push under 5 % of odds does not deserve a line
                    break
                name = self.features_[j]
                factors.append(Factor(name, float(V[i, j]), float(contrib[i, j]),
                                      describe_factor(name, float(V[i, j]), lang, as_of_year=as_of_year)))
            exp = Explanation(person_id=str(pid), task=self.task, probability=float(probs[i]),
                              baseline=float(1 / (1 + math.exp(-base))), factors=factors, exact=self.kind == "logistic")
            exp.sentence = sentence(exp, lang)
            out.append(exp)
        return out


def sentence(exp: Explanation, lang: str | None = None) -> str:
    """``"72 % : 3 don(s) sur 24 mois (+), dernier don il y a 4 mois (+)"``."""
    head = percent(exp.probability, lang)
    sep = tr(" : ", ": ", lang)
    if not exp.factors:
        return head + sep + tr("profil proche de la moyenne", "close to the average profile", lang)
    return head + sep + ", ".join(f"{f.text} ({f.sign})" for f in exp.factors)
