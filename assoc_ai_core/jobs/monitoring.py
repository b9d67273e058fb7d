"""Watching the model: per-run figures over time and drift flags, with a plain-language alert.

Every run of the triage job already stores its figures in the ``runs`` table
(share sent to review, category mix, mean confidence).  :func:`monitor` reads
them over a recent window and compares with what the live model expected when
it was trained (``metadata_``: expected automatic share, examples per
category), and with the mailbox's own history (sender domains, corrections):

* **review share** outside the expected range (expected ± ``review_margin``,
  widened by three binomial standard deviations for small windows);
* **category mix** far from the training mix (total variation distance above
  ``mix_distance``);
* **new sender-domain cluster**: a domain with ``domain_cluster`` messages or
  more in the window and none before;
* **corrections rising**: the share of auto-routed mail corrected by people
  in the window exceeds the earlier share by ``correction_rise``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import build_config
from assoc_ai_core.i18n import percent, tr

_COUNTS = ("window_days", "min_messages", "domain_cluster", "min_corrections")
_SHARES = ("review_margin", "mix_distance", "correction_rise")


@dataclass(frozen=True)
class MonitorSettings:
    """``[monitor]``: who gets the alert, the window and the drift thresholds."""

    alert_to: tuple[str, ...] = ()
    window_days: int = 7
    min_messages: int = 20
    review_margin: float = 0.15
    mix_distance: float = 0.25
    domain_cluster: int = 5
    correction_rise: float = 0.10
    min_corrections: int = 3
    lang: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.alert_to, tuple) or not all(isinstance(a, str) and "@" in a for a in self.alert_to):
            raise ConfigError(tr("[monitor] alert_to : une adresse ou une liste d'adresses.",
                                 "[monitor] alert_to: an address or a list of addresses."))
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(tr(f"[monitor] {name} doit être un entier positif.",
                                     f"[monitor] {name} must be a positive integer."))
        for name in _SHARES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(tr(f"[monitor] {name} doit être un nombre entre 0 et 1.",
                                     f"[monitor] {name} must be a number between 0 and 1."))
        if self.lang not in (None, "fr", "en"):
            raise ConfigError(tr('[monitor] lang : "fr" ou "en".', '[monitor] lang: "fr" or "en".'))

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> MonitorSettings:
        """Check the ``[monitor]`` section (unknown keys are an error)."""
        values = dict(section)
        to = values.get("alert_to", [])
        to = [to] if isinstance(to, str) else to
        values["alert_to"] = tuple(to) if isinstance(to, list) else to
        settings: MonitorSettings = build_config(cls, values, where="monitor")
        return settings


@dataclass
class Flag:
    """One drift found: its kind, a plain-language sentence, and the figures behind it."""

    kind: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


def _pct_or_dash(value: float | None, lang: str | None) -> str:
    return percent(value, lang) if value is not None else "—"


@dataclass
class MonitorReport:
    """Per-run figures over time and the drift flags of the recent window."""

    runs: list[dict[str, Any]]
    window_start: str
    decided: int
    review_share: float | None
    expected_review_share: float | None
    review_range: tuple[float, float] | None
    mix: dict[str, float]
    training_mix: dict[str, float]
    mean_confidence: float | None
    flags: list[Flag] = field(default_factory=list)
    lang: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def text(self) -> str:
        """The plain-language alert (or all-clear) in the configured language."""
        t = partial(tr, lang=self.lang)
        pct = partial(_pct_or_dash, lang=self.lang)
        lines = [t(f"Depuis le {self.window_start[:10]} : {self.decided} messages triés, {pct(self.review_share)} "
                   f"envoyés en vérification (attendu : {pct(self.expected_review_share)}), confiance moyenne "
                   f"{pct(self.mean_confidence)}.",
                   f"Since {self.window_start[:10]}: {self.decided} messages sorted, {pct(self.review_share)} sent "
                   f"to review (expected: {pct(self.expected_review_share)}), mean confidence "
                   f"{pct(self.mean_confidence)}.")]
        if not self.flags:
            lines.append(t("Rien d'anormal.", "Nothing unusual."))
        else:
            lines.append(t("À regarder :", "Worth a look:"))
            lines += [f"- {f.message}" for f in self.flags]
            lines.append(t("Que faire : vérifiez quelques messages récents du dossier « À vérifier » ; si les "
                           "catégories ont changé, corrigez-les dans la boîte puis lancez « assoc-ai retrain ».",
                           "What to do: look at a few recent messages in the review folder; if the categories have "
                           "changed, correct them in the mailbox, then run 'assoc-ai retrain'."))
        return "\n".join(lines)


_SERIES_KEYS = ("id", "started_at", "status", "model_version", "fetched", "auto", "review", "errors", "corrections",
                "review_share", "mean_confidence", "category_mix")


def monitor(state: Any, metadata: Mapping[str, Any], settings: MonitorSettings | None = None, *,
            instance: str | None = None, now: datetime | None = None) -> MonitorReport:
    """Figures and drift flags from the state store and the live model's training metadata."""
    s = settings or MonitorSettings()
    start = ((now or datetime.now(UTC)) - timedelta(days=s.window_days)).isoformat(timespec="seconds")
    runs = [r for r in reversed(state.runs(instance, limit=10_000)) if not r["dry_run"]]
    recent = [r for r in runs if r["started_at"] >= start]
    mix_counts = _category_counts(recent)
    report = _window_figures(runs, recent, mix_counts, metadata, start, s.lang)
    t = partial(tr, lang=s.lang)
    pct = partial(percent, lang=s.lang)
    report.flags += _review_share_flags(report, s, t, pct)
    report.flags += _category_mix_flags(report, sum(mix_counts.values()), s, t, pct)
    report.flags += _new_domain_flags(state, instance, start, s, t)
    report.flags += _correction_flags(state, runs, recent, start, s, t, pct)
    return report


_Say = Callable[[str, str], str]
_Pct = Callable[[float], str]


def _category_counts(runs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in runs:
        for k, v in (r["category_mix"] or {}).items():
            counts[k] = counts.get(k, 0) + int(v)
    return counts


def _window_figures(runs: Sequence[Mapping[str, Any]], recent: Sequence[Mapping[str, Any]],
                    mix_counts: Mapping[str, int], metadata: Mapping[str, Any], start: str,
                    lang: str | None) -> MonitorReport:
    """The report's figures (no flags yet): the window's shares and mix beside the training metadata's."""
    series = [{k: r[k] for k in _SERIES_KEYS} for r in runs]
    decided = sum(r["auto"] + r["review"] + r["errors"] for r in recent)
    sent_review = sum(r["review"] + r["errors"] for r in recent)
    conf_weight = sum((r["mean_confidence"] or 0) * (r["auto"] + r["review"]) for r in recent)
    conf_n = sum(r["auto"] + r["review"] for r in recent if r["mean_confidence"] is not None)
    total_mix = sum(mix_counts.values())
    mix = {k: v / total_mix for k, v in sorted(mix_counts.items())} if total_mix else {}
    per_class = metadata.get("per_class", {}) or {}
    n_train = sum(int(v.get("examples", 0)) for v in per_class.values())
    training_mix = {k: int(v.get("examples", 0)) / n_train for k, v in sorted(per_class.items())} if n_train else {}
    expected = 1 - float(metadata["expected_auto_share"]) if "expected_auto_share" in metadata else None
    return MonitorReport(series, start, decided, sent_review / decided if decided else None, expected, None, mix,
                         training_mix, conf_weight / conf_n if conf_n else None, lang=lang)


def _review_share_flags(report: MonitorReport, s: MonitorSettings, t: _Say, pct: _Pct) -> list[Flag]:
    """Sets the expected review range; flags a review share outside it (widened for small windows)."""
    expected, share, decided = report.expected_review_share, report.review_share, report.decided
    if expected is None or share is None:
        return []
    spread = max(s.review_margin, 3 * math.sqrt(max(expected * (1 - expected), 0.01) / decided))
    low, high = report.review_range = (max(0.0, expected - spread), min(1.0, expected + spread))
    if decided < s.min_messages or low <= share <= high:
        return []
    more = share > expected
    return [Flag("review_share", t(
        f"{pct(share)} du courrier part en vérification, contre {pct(expected)} attendu à "
        f"l'entraînement : le modèle {'hésite plus' if more else 'hésite moins'} que prévu.",
        f"{pct(share)} of mail goes to review, against {pct(expected)} expected at training: the "
        f"model is {'less' if more else 'more'} sure than planned."),
        {"review_share": share, "expected": expected, "range": report.review_range})]


def _category_mix_flags(report: MonitorReport, total: int, s: MonitorSettings, t: _Say, pct: _Pct) -> list[Flag]:
    """Flags a window mix far (total variation distance) from the training mix."""
    mix, training_mix = report.mix, report.training_mix
    if not training_mix or total < s.min_messages:
        return []
    keys = set(training_mix) | set(mix)
    distance = 0.5 * sum(abs(mix.get(k, 0) - training_mix.get(k, 0)) for k in keys)
    if distance <= s.mix_distance:
        return []
    moved = sorted(keys, key=lambda k: -abs(mix.get(k, 0) - training_mix.get(k, 0)))[:2]
    detail = ", ".join(f"{k} {pct(mix.get(k, 0))} ({pct(training_mix.get(k, 0))})" for k in moved)
    return [Flag("category_mix", t(
        f"La répartition des catégories a changé (écart {pct(distance)}) : {detail} — entre parenthèses, "
        "la part à l'entraînement.",
        f"The category mix has changed (distance {pct(distance)}): {detail} — in brackets, the share at "
        "training."), {"distance": distance, "mix": mix, "training_mix": training_mix})]


def _new_domain_flags(state: Any, instance: str | None, start: str, s: MonitorSettings, t: _Say) -> list[Flag]:
    """Flags sender domains with many messages in the window and none before (pseudonyms keep the domain)."""
    rows = state.execute("SELECT sender_pseudo, decided_at FROM messages WHERE dry_run=0 AND sender_pseudo LIKE '%@%'"
                         + (" AND instance=?" if instance else ""), (instance,) if instance else ()).fetchall()
    before: dict[str, int] = {}
    window: dict[str, int] = {}
    for pseudo, decided_at in rows:
        counts = window if decided_at >= start else before
        domain = pseudo.rpartition("@")[2].lower()
        counts[domain] = counts.get(domain, 0) + 1
    if sum(before.values()) < s.min_messages:
        return []
    return [Flag("new_domain", t(f"{n} messages d'un domaine jamais vu auparavant : {domain}.",
                                 f"{n} messages from a domain never seen before: {domain}."),
                 {"domain": domain, "messages": n})
            for domain, n in sorted(window.items()) if n >= s.domain_cluster and domain not in before]


def _correction_flags(state: Any, runs: Sequence[Mapping[str, Any]], recent: Sequence[Mapping[str, Any]], start: str,
                      s: MonitorSettings, t: _Say, pct: _Pct) -> list[Flag]:
    """Flags a rise of the share of auto-routed mail that people corrected, window against before."""
    auto_recent = sum(r["auto"] for r in recent)
    auto_before = sum(r["auto"] for r in runs if r["started_at"] < start)
    corr_recent = state.execute("SELECT COUNT(*) FROM corrections WHERE detected_at>=?", (start,)).fetchone()[0]
    corr_before = state.execute("SELECT COUNT(*) FROM corrections WHERE detected_at<?", (start,)).fetchone()[0]
    if not auto_recent or corr_recent < s.min_corrections:
        return []
    rate, base = corr_recent / auto_recent, (corr_before / auto_before if auto_before else 0.0)
    if rate - base <= s.correction_rise:
        return []
    return [Flag("corrections", t(
        f"Les corrections augmentent : {corr_recent} sur {auto_recent} messages triés automatiquement "
        f"({pct(rate)}, contre {pct(base)} avant).",
        f"Corrections are rising: {corr_recent} of {auto_recent} automatically sorted messages "
        f"({pct(rate)}, against {pct(base)} before)."), {"rate": rate, "before": base})]


def monitor_from_config(config: Any, *, now: datetime | None = None) -> MonitorReport:
    """:func:`monitor` for a configured job (its state file and live model)."""
    from assoc_ai_core.jobs.registry import ModelRegistry
    from assoc_ai_core.jobs.state import StateStore
    from assoc_ai_core.persistence import read_metadata

    settings = config.settings
    ms = MonitorSettings.from_mapping(config.section("monitor"))
    if not settings.state_path.is_file():
        raise ConfigError(tr(f"Fichier d'état introuvable : {settings.state_path} (aucun tri n'a encore tourné ?).",
                             f"State file not found: {settings.state_path} (has the triage never run?)."))
    registry = ModelRegistry(settings.models_dir)
    current = registry.current()
    path = registry.path(current) if current else settings.model_path
    metadata = read_metadata(path) if path is not None and path.is_file() else {}
    with StateStore(settings.state_path) as state:
        return monitor(state, metadata, ms, instance=settings.instance, now=now)


def monitoring_html(report: MonitorReport) -> str:
    """An HTML section (figures per run, flags) to include in a report or to read alone."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_HTML).render(r=report, t=lambda fr, en: tr(fr, en, report.lang))


_HTML = """<section class="assoc-ai-monitoring"><h2>{{ t("Surveillance du modèle", "Model monitoring") }}</h2>
<p style="white-space:pre-line">{{ r.text() }}</p>
<table><tr><th>{{ t("Exécution", "Run") }}</th><th>{{ t("Début", "Start") }}</th><th>{{ t("Modèle", "Model") }}</th>
<th>{{ t("Triés", "Sorted") }}</th><th>{{ t("Part en revue", "Review share") }}</th>
<th>{{ t("Confiance moyenne", "Mean confidence") }}</th><th>{{ t("Corrections", "Corrections") }}</th></tr>
{% for run in r.runs %}<tr><td>{{ run.id }}</td><td>{{ run.started_at }}</td><td>{{ run.model_version or "—" }}</td>
<td>{{ run.auto + run.review + run.errors }}</td>
<td>{% if run.review_share is not none %}{{ "%.0f"|format(run.review_share * 100) }} %{% else %}—{% endif %}</td>
<td>{% if run.mean_confidence is not none %}{{ "%.2f"|format(run.mean_confidence) }}{% else %}—{% endif %}</td>
<td>{{ run.corrections }}</td></tr>{% endfor %}</table></section>
"""


def build_alert(report: MonitorReport, *, sender: str, to: tuple[str, ...]) -> Any:
    """The alert e-mail (plain text, ``Auto-Submitted: auto-generated``)."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = tr("[assoc-ai] Le tri du courrier mérite un coup d'œil",
                        "[assoc-ai] Mail sorting needs a look", report.lang)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Assoc-AI"] = "monitor-alert"
    msg.set_content(report.text() + "\n")
    return msg


def send_alert(report: MonitorReport, config: Any) -> str:
    """Mail the alert to ``[monitor] alert_to`` through the ``[smtp]`` settings; returns the recipients."""
    from assoc_ai_core.jobs.acknowledgement import NoticeSender
    from assoc_ai_core.jobs.forwarding import SmtpSettings

    ms = MonitorSettings.from_mapping(config.section("monitor"))
    if not ms.alert_to:
        raise ConfigError(tr("Ajoutez [monitor] alert_to = \"adresse\" pour recevoir les alertes.",
                             "Add [monitor] alert_to = \"address\" to receive alerts."))
    if config.settings.smtp is None:
        raise ConfigError(tr("Une section [smtp] est nécessaire pour envoyer les alertes.",
                             "An [smtp] section is needed to send alerts."))
    smtp = SmtpSettings.from_section(config.settings.smtp)
    NoticeSender(smtp).send_notice(build_alert(report, sender=smtp.from_address, to=ms.alert_to), list(ms.alert_to))
    return ", ".join(ms.alert_to)


__all__ = ["MonitorSettings", "MonitorReport", "Flag", "monitor", "monitor_from_config", "monitoring_html",
           "build_alert", "send_alert"]
