"""Why a message got its category, computed from the model's own weights.

For the linear model, the gap between the chosen category *k* and the
runner-up *r* is exactly ``Σ_j x_j (w_kj − w_rj) / T + (b_k − b_r) / T``; each
term of the sum is one feature's push.  Word and phrase features are shown as
they are; character n-gram features are shared out among the words of the
message that contain them, so the volunteer reads words, and the total stays
exactly the model's (``Explanation.total + Explanation.bias`` equals the logit
gap, which the tests check).
"""

from __future__ import annotations

import re
import weakref
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from assoc_ai_core.i18n import current_lang, percent, signed, tr
from assoc_ai_core.mail.ngrams import CharNgramIndex
from assoc_ai_core.mail.parsing import message_from_text
from assoc_ai_core.mail.stopwords import FRENCH_STOP_WORDS
from assoc_ai_core.records.mail import Message

__all__ = ["Explanation", "explain", "explain_many", "explain_model", "sentence", "reason_lines", "thread_sentence"]

_FUNCTION_WORDS = FRENCH_STOP_WORDS | ENGLISH_STOP_WORDS | frozenset(
    "pas plus moi toi n'ai j'ai c'est l'on qu'il d'un d'une sous sans".split()
)

# What French elision leaves before an apostrophe ("jusqu'à", "d'adhérent"): never a reason on its own.
_ELIDED = frozenset("c d j l m n s t qu jusqu lorsqu puisqu quoiqu presqu".split())
# The endings of English contractions: "don't" is one word, its "t" no elision.
_CONTRACTION = re.compile(r"\w['’](?:t|s|re|ve|ll|d|m)\Z")


def _content_core(term: str) -> str | None:
    """The content word of a term for the one-line sentence, or None for meta reasons and function words.

    "d'adhérent" → "adhérent"; "jusqu'à", "jusqu" and "⟨un lien⟩" → None.  The sentence names each core
    once, so "jusqu" and "jusqu'à", or "l'adhésion" and "adhésion", are not listed twice.
    """
    if term.startswith("⟨"):
        return None
    if _CONTRACTION.search(term):
        low = term.lower().replace("’", "'")
        return None if low in _FUNCTION_WORDS else low
    parts = [p for p in term.lower().replace("’", "'").strip("'").split("'") if p]
    content = [p for p in parts if p not in _ELIDED and p not in _FUNCTION_WORDS]
    return " ".join(content) or None


_META_LABELS = {
    "sender_": ("expéditeur déjà vu", "known sender"),
    "rcpt_": ("destinataire habituel", "usual recipient"),
    "from_": ("expéditeur @{}", "sender @{}"),
    "fromtld_": ("domaine .{}", "domain .{}"),
    "att_": ("pièce jointe {}", "attachment {}"),
    "lang_": ("langue {}", "language {}"),
    "kind_reply": ("c'est une réponse", "it is a reply"),
    "kind_forward": ("c'est un transfert", "it is a forward"),
    "kind_new": ("nouveau message", "new message"),
    "has_attachment": ("a une pièce jointe", "has an attachment"),
    "automated": ("message automatique", "automated message"),
    "html_only": ("HTML seulement", "HTML only"),
    "empty_body": ("corps vide", "empty body"),
}


@dataclass
class Explanation:
    """The signed reasons behind one prediction.

    ``toward`` lists (term, weight) pairs that pushed toward ``label`` over
    ``runner_up`` (positive weights, strongest first); ``against`` those that
    pushed toward the runner-up (negative weights).  Weights are in logit
    units of the calibrated model.
    """

    label: str
    probability: float
    runner_up: str
    runner_up_probability: float
    toward: list[tuple[str, float]] = field(default_factory=list)
    against: list[tuple[str, float]] = field(default_factory=list)
    sentence: str = ""
    lang: str = "fr"
    decision: str = "auto"
    total: float = 0.0
    bias: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        d = asdict(self)
        d["toward"] = [{"term": t, "weight": round(w, 4)} for t, w in self.toward]
        d["against"] = [{"term": t, "weight": round(w, 4)} for t, w in self.against]
        return d


# Pseudonymisation turns "https://…" into <URL>, which the word features read as "url": shown as what it
# stands for, so a board member reads "a link", not a placeholder's spelling.
_PLACEHOLDER_LABELS = {
    "url": ("un lien", "a link"),
    "email": ("une adresse e-mail", "an e-mail address"),
    "phone": ("un numéro de téléphone", "a phone number"),
    "iban": ("un IBAN", "an IBAN"),
    "address": ("une adresse postale", "a postal address"),
    "postcode": ("un code postal", "a postcode"),
    "name": ("un nom de personne", "a person's name"),
    "number": ("un numéro (adhérent, contrat…)", "a number (member, contract…)"),
}


def _name_placeholders(terms: dict[str, float], text: str, lang: str) -> dict[str, float]:
    """Terms with each placeholder word the text holds (``<URL>`` → "url") shown as ⟨a link⟩."""
    if "<" not in text:
        return terms
    out: dict[str, float] = defaultdict(float)
    for term, weight in terms.items():
        label = _PLACEHOLDER_LABELS.get(term.lower())
        if label is not None and f"<{term.upper()}>" in text:
            term = "⟨" + tr(*label, lang) + "⟩"
        out[term] += weight
    return out


def _readable_meta(token: str, lang: str) -> str:
    for prefix, (fr, en) in _META_LABELS.items():
        if token == prefix or (prefix.endswith("_") and token.startswith(prefix)):
            rest = token[len(prefix):]
            if prefix == "from_":
                rest = rest.replace("_", ".")
            elif prefix == "att_":
                rest = rest.split("_", 1)[-1].upper()
            text = tr(fr, en, lang)
            return text.format(rest) if "{}" in text else text
    return token


def _class_weights(clf: Any) -> tuple[np.ndarray, np.ndarray]:
    coef = clf.coef_
    intercept = clf.intercept_
    if coef.shape[0] == 1:  # binary: decision is for classes_[1]; split it symmetrically
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return np.asarray(coef), np.asarray(intercept)


_NAMES: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def _feature_names(features: Any) -> np.ndarray:
    """Feature names of a fitted feature step, computed once per model (it is costly)."""
    names = _NAMES.get(features)
    if names is None:
        names = features.get_feature_names_out()
        _NAMES[features] = names
    return names


_BLOCKS = ("word", "char", "meta", "history", "semantic")
_GRAMS_BATCH = 500  # messages whose words' n-grams are looked up together
_CHAR = 1


@dataclass
class _Layout:
    """Where each block of a fitted feature step lies: per column, its block and its term."""

    block: np.ndarray  # index into _BLOCKS, len(_BLOCKS) for any other block
    terms: list[str]
    char_start: int
    char_index: CharNgramIndex | None  # None: the character n-grams are shared the plain way


_LAYOUTS: weakref.WeakKeyDictionary[Any, _Layout] = weakref.WeakKeyDictionary()


def _layout(features: Any) -> _Layout:
    layout = _LAYOUTS.get(features)
    if layout is None:
        names = _feature_names(features)
        split = [n.partition("__") for n in names.tolist()]
        code = {b: i for i, b in enumerate(_BLOCKS)}
        block = np.fromiter((code.get(b, len(_BLOCKS)) for b, _, _ in split), dtype=np.int8, count=len(split))
        char_vec: Any = dict((n, t) for n, t, _ in features.transformers_).get("char")
        char_index = char_vec._fast_index() if hasattr(char_vec, "_fast_index") else None
        char_cols = np.flatnonzero(block == _CHAR)
        layout = _Layout(block, [f for _, _, f in split], int(char_cols[0]) if len(char_cols) else 0,
                         char_index if isinstance(char_index, CharNgramIndex) else None)
        _LAYOUTS[features] = layout
    return layout


def _contributions(model: Any, cleaned_row: np.ndarray, k: int, r: int, X_row: Any = None,
                   grams: _WordGrams | None = None, lang: str | None = None) -> tuple[dict[str, float], float, float]:
    """Per-term pushes toward class k over class r for one cleaned message.

    ``X_row`` is its features (a sparse row, or its ``(indices, data)``) and ``grams`` its words'
    n-grams, when the caller computed them for a batch.
    """
    pipe = model.pipeline_
    features = pipe.named_steps["features"]
    clf = pipe.named_steps["clf"]
    if isinstance(X_row, tuple):
        idx, values = X_row
    else:
        X = (X_row if X_row is not None else features.transform(cleaned_row.reshape(1, -1))).tocsr()
        idx, values = X.indices, X.data
    coef, intercept = _class_weights(clf)
    T = float(model.temperature_)
    contrib = values * ((coef[k, idx] - coef[r, idx]) / T)  # only the message's features, not the whole rows
    layout = _layout(features)
    text = str(cleaned_row[2] if len(cleaned_row) > 2 else cleaned_row[0])  # what the char features read
    terms: dict[str, float] = defaultdict(float)
    lang = lang or current_lang()  # the explanation's language: no "⟨langue en⟩" in an English one
    blocks = layout.block[idx]
    is_char = blocks == _CHAR
    quoted = tr(" (cité)", " (quoted)", lang)
    for j, b, c in zip(idx[~is_char].tolist(), blocks[~is_char].tolist(), contrib[~is_char].tolist(), strict=True):
        feat = layout.terms[j]
        if b == 0 or b == len(_BLOCKS):  # words and phrases, or a block of another kind
            terms[feat] += c
        elif b == 2:
            terms["⟨" + _readable_meta(feat, lang) + "⟩"] += c
        elif b == 3:
            terms[feat + quoted] += c
        else:  # 512 dimensions of meaning: one reason, "the overall sense"
            terms["⟨" + tr("sens général du message", "overall meaning of the message", lang) + "⟩"] += c
    if is_char.any():
        char_idx, char_contrib = idx[is_char], contrib[is_char]
        if layout.char_index is not None:
            if grams is None:
                grams = _batch_word_grams([text], features, layout.char_index)[0]
            _share_char_ngrams_fast(char_idx - layout.char_start, char_contrib, grams, terms)
        else:
            parts = [(layout.terms[j], c) for j, c in zip(char_idx.tolist(), char_contrib.tolist(), strict=True)]
            _share_char_ngrams(parts, text, features, terms)
    total = float(contrib.sum())
    bias = float((intercept[k] - intercept[r]) / T)
    return terms, total, bias


def _word_displays(text: str, prep: Any, memo: dict[str, tuple[str, str]] | None = None) -> dict[str, str]:
    """How each preprocessed word is shown: as written, lower-cased, without surrounding punctuation."""
    originals: dict[str, str] = {}
    memo = {} if memo is None else memo
    for word in text.split():
        known = memo.get(word)
        if known is None:
            known = memo[word] = (prep(word), re.sub(r"^\W+|\W+$", "", word.lower()) or word.lower())
        originals.setdefault(*known)
    return originals


@dataclass
class _WordGrams:
    """The distinct words of a message's text and, for each n-gram of the vocabulary they hold, which word."""

    words: list[str]
    counts: np.ndarray
    word_of: np.ndarray
    column_of: np.ndarray  # column in the character vectorizer's vocabulary
    displays: dict[str, str]


def _batch_word_grams(texts: Sequence[str], features: Any, index: Any) -> list[_WordGrams]:
    """Split every text into distinct words and find their n-grams, for a whole batch in one pass."""
    char_vec = dict((n, t) for n, t, _ in features.transformers_)["char"]
    prep = char_vec.build_preprocessor()
    counters = [Counter(prep(t).split()) for t in texts]
    everything = [w for c in counters for w in c]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in counters])]).astype(np.int64)
    # Each distinct word as a one-word document: (word, vocabulary column) for every n-gram it holds.
    rows, cols = index._chunk([f" {w} " for w in everything]) if everything else (np.zeros(0, np.int64),) * 2
    pairs = np.unique(rows * index.n_features + cols)  # a word holding an n-gram twice holds it once
    word_of, column_of = pairs // index.n_features, pairs % index.n_features
    bounds = np.searchsorted(word_of, offsets)
    memo: dict[str, tuple[str, str]] = {}
    out = []
    for i, counter in enumerate(counters):
        lo, hi = bounds[i], bounds[i + 1]
        out.append(_WordGrams(list(counter), np.fromiter(counter.values(), dtype=float, count=len(counter)),
                              word_of[lo:hi] - offsets[i], column_of[lo:hi], _word_displays(texts[i], prep, memo)))
    return out


def _share_char_ngrams_fast(columns: np.ndarray, contrib: np.ndarray, grams: _WordGrams,
                            terms: dict[str, float]) -> None:
    """``_share_char_ngrams`` with the n-grams of the message's words found by the vectorizer's numpy index.

    Same sharing: each n-gram's push goes to the distinct words holding it, in
    proportion to how often each word occurs.
    """
    order = np.argsort(columns)
    sorted_cols, sorted_push = columns[order], contrib[order]
    at = np.minimum(np.searchsorted(sorted_cols, grams.column_of), len(sorted_cols) - 1)
    present = sorted_cols[at] == grams.column_of
    word_of, gram_of = grams.word_of[present], at[present]  # gram_of: the n-gram's place among the pushes
    weight = grams.counts[word_of]
    holders_total = np.bincount(gram_of, weights=weight, minlength=len(sorted_cols))
    shares = np.bincount(word_of, weights=sorted_push[gram_of] * weight / holders_total[gram_of],
                         minlength=len(grams.words))
    unshared = holders_total == 0
    if unshared.any():
        terms["…"] += float(sorted_push[unshared].sum())  # cannot happen for char_wb; keeps the sum exact regardless
    for i in np.flatnonzero(np.bincount(word_of, minlength=len(grams.words))).tolist():
        word = grams.words[i]
        terms[grams.displays.get(word, word)] += float(shares[i])


def _share_char_ngrams(parts: list[tuple[str, float]], text: str, features: Any, terms: dict[str, float]) -> None:
    """Give each character n-gram's push to the words that contain it."""
    char_vec = dict((n, t) for n, t, _ in features.transformers_)["char"]
    prep = char_vec.build_preprocessor()
    counts: dict[str, int] = defaultdict(int)
    for word in prep(text).split():
        counts[word] += 1
    originals = _word_displays(text, prep)
    lo, hi = char_vec.ngram_range
    holders: dict[str, list[str]] = defaultdict(list)
    for w in counts:
        padded = f" {w} "
        seen = set()
        for n in range(lo, hi + 1):
            for i in range(len(padded) - n + 1):
                g = padded[i : i + n]
                if g not in seen:
                    seen.add(g)
                    holders[g].append(w)
    for gram, c in parts:
        owners = holders.get(gram, [])
        total = sum(counts[w] for w in owners)
        if not total:
            terms["…"] += c  # cannot happen for char_wb; keeps the sum exact regardless
            continue
        for w in owners:
            terms[originals.get(w, w)] += c * counts[w] / total


def explain(model: Any, message: Message | str, *, top_k: int = 8, lang: str | None = None) -> Explanation:
    """Explain the model's decision on one message (or text), in French or English."""
    return explain_many(model, [message], top_k=top_k, lang=lang)[0]


def explain_many(model: Any, messages: Sequence[Message | str], *, top_k: int = 8,
                 lang: str | None = None, cleaned: Any = None) -> list[Explanation]:
    """Explain many messages at once: cleaned and turned into features once, as a batch.

    ``cleaned`` is ``model.transform_clean(messages)`` when the caller already has it.
    """
    lang = lang or current_lang()
    msgs = [message_from_text(m) if isinstance(m, str) else m for m in messages]
    if not msgs:
        return []
    if cleaned is None:
        cleaned = model.transform_clean(msgs)
    features = model.pipeline_.named_steps["features"]
    X = features.transform(cleaned).tocsr()
    scores = model.pipeline_.named_steps["clf"].decision_function(X)
    if scores.ndim == 1:
        scores = np.column_stack([-scores / 2, scores / 2])
    z = scores / model.temperature_
    proba = np.exp(z - z.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    classes = [str(c) for c in model.classes_]
    layout = _layout(features)
    grams: list[_WordGrams | None] = [None] * len(msgs)
    out = []
    for i in range(len(msgs)):
        if layout.char_index is not None and i % _GRAMS_BATCH == 0:
            # The words of a few hundred messages at a time: one numpy pass each, memory bounded.
            block = cleaned[i : i + _GRAMS_BATCH]
            texts = [str(row[2] if len(row) > 2 else row[0]) for row in block]
            grams[i : i + len(block)] = _batch_word_grams(texts, features, layout.char_index)
        order = np.argsort(-proba[i])
        k = int(order[0])
        r = int(order[1]) if len(order) > 1 else k
        terms: dict[str, float]
        if k == r:
            terms, total, bias = {}, 0.0, 0.0
        else:
            row = slice(X.indptr[i], X.indptr[i + 1])
            terms, total, bias = _contributions(model, cleaned[i], k, r, X_row=(X.indices[row], X.data[row]),
                                                grams=grams[i], lang=lang)
            terms = _name_placeholders(terms, str(cleaned[i][0]), lang)
        ranked = sorted(((t, w) for t, w in terms.items() if abs(w) > 1e-6), key=lambda tw: -abs(tw[1]))
        exp = Explanation(
            label=classes[k], probability=float(proba[i, k]), runner_up=classes[r],
            runner_up_probability=float(proba[i, r]),
            toward=[(t, w) for t, w in ranked if w > 0][:top_k], against=[(t, w) for t, w in ranked if w < 0][:top_k],
            lang=lang, decision="auto" if proba[i, k] >= _threshold_of(model, int(k)) else "review", total=total, bias=bias,
        )
        exp.sentence = sentence(exp, lang=lang)
        out.append(exp)
    return out


_WEAK = 0.25  # a reason below this share of the strongest one is not named as a main reason
_MEANING_TERMS = frozenset({"⟨sens général du message⟩", "⟨overall meaning of the message⟩"})


def _sentence_reasons(exp: Explanation, words: int) -> list[str]:
    """The strongest reasons toward the label, strongest first, as the sentence names them.

    A signal ("⟨known sender⟩", "⟨a link⟩") is named as what it is; function words and elision
    fragments are skipped; a reason much weaker than the strongest one is not called a main reason
    (the sentence once quoted weak words after skipping stronger signals).
    """
    shown: list[str] = []
    cores: set[str] = set()
    # The sentence-meaning block sums 512 dimensions into one reason: measured against it, every single word
    # would look weak and the sentence would name nothing a volunteer can check.  Words are measured against words.
    singles = [w for t, w in exp.toward if t not in _MEANING_TERMS]
    strongest = singles[0] if singles else 0.0
    for t, w in exp.toward:
        if len(shown) >= words:
            break
        if t in _MEANING_TERMS:
            shown.append(t[1:-1])
            cores.add(t)
            continue
        if w < _WEAK * strongest:
            break
        if t.startswith("⟨") and t.endswith("⟩"):
            if t not in cores:
                shown.append(t[1:-1])
                cores.add(t)
            continue
        core = _content_core(t)
        if core is not None and core not in cores:
            shown.append(f"\u201c{t}\u201d" if exp.lang == "en" else f"« {t} »")
            cores.add(core)
    return shown


def sentence(exp: Explanation, *, lang: str | None = None, words: int = 4) -> str:
    """One plain sentence: category, confidence, main reasons (strongest first), runner-up."""
    lang = lang or exp.lang
    if lang != exp.lang:
        exp = Explanation(**{**exp.__dict__, "lang": lang})
    # The sentence names content words and signals; every push, function words included, stays in the
    # signed lists (faithful, complete).
    because = ", ".join(_sentence_reasons(exp, words))
    if lang == "en":
        s = f"Classified {exp.label} ({percent(exp.probability, 'en')})"
        s += f" mainly because of {because}" if because else ""
        s += f"; otherwise: {exp.runner_up} ({percent(exp.runner_up_probability, 'en')})."
        if exp.decision == "review":
            s += " Not sure enough: to be checked by a person."
    else:
        s = f"Classé {exp.label} ({percent(exp.probability, 'fr')})"
        s += f" surtout à cause de {because}" if because else ""
        s += f" ; sinon : {exp.runner_up} ({percent(exp.runner_up_probability, 'fr')})."
        if exp.decision == "review":
            s += " Pas assez sûr : à vérifier par une personne."
    return s


_MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}


def thread_sentence(category: str, when: date | None, *, lang: str | None = None) -> str:
    """Why a reply took its thread's category: « même fil que le message du 3 mars, classé Partenariat »."""
    lang = lang or current_lang()
    if when is None:
        return tr(f"même fil qu'un message classé {category}", f"same thread as a message sorted as {category}", lang)
    day_fr = "1er" if when.day == 1 else str(when.day)
    year = "" if when.year == date.today().year else f" {when.year}"  # a thread of another year says which
    fr = f"{day_fr} {_MONTHS['fr'][when.month - 1]}{year}"
    en = f"{when.day} {_MONTHS['en'][when.month - 1]}{year}"
    return tr(f"même fil que le message du {fr}, classé {category}",
              f"same thread as the message of {en}, sorted as {category}", lang)


def reason_lines(exp: Explanation, *, lang: str | None = None) -> list[str]:
    """The signed reasons as lines a volunteer can read, each list under a heading that says what its sign means.

    The weights compare the category chosen with the runner-up: a positive one pushed toward the
    category, a negative one toward the runner-up.  Shown bare under "for <runner-up>", the
    negative weights read as reasons against the runner-up, which they are not.
    """
    lang = lang or exp.lang

    def listed(terms: list[tuple[str, float]]) -> str:
        return ", ".join(f"{t} ({signed(w, 2, lang)})" for t, w in terms) or tr("aucun", "none", lang)

    if exp.runner_up == exp.label:
        return [tr(f"Raisons pour {exp.label} : ", f"Reasons for {exp.label}: ", lang) + listed(exp.toward)]
    return [
        tr(f"Raisons pour {exp.label} plutôt que {exp.runner_up} (poids positifs) : ",
           f"Reasons for {exp.label} rather than {exp.runner_up} (positive weights): ", lang) + listed(exp.toward),
        tr(f"Ce qui tirait plutôt vers {exp.runner_up} (poids négatifs, contre {exp.label}) : ",
           f"What pulled toward {exp.runner_up} instead (negative weights, against {exp.label}): ", lang)
        + listed(exp.against),
        tr("Poids : écart de score entre les deux catégories (plus il est grand, plus la raison compte).",
           "Weights: score gap between the two categories (the larger, the more the reason counts).", lang),
    ]


def explain_model(model: Any, *, top_k: int = 15, lang: str | None = None) -> dict[str, list[tuple[str, float]]]:
    """Top words, phrases and meta signals of each category (the model's largest weights)."""
    lang = lang or current_lang()
    pipe = model.pipeline_
    features = pipe.named_steps["features"]
    coef, _ = _class_weights(pipe.named_steps["clf"])
    names = _feature_names(features)
    keep = np.array([not n.startswith(("char__", "semantic__", "history__")) and not n.startswith(("meta__sender_", "meta__rcpt_"))
                     for n in names])
    # With pseudonymisation on, the words "name", "number", "url"… are the placeholders' spelling:
    # shown as what they stand for, so a report never seems to list a person's name as a reason.
    placeholders = bool(getattr(model, "pseudonymize", False))
    out: dict[str, list[tuple[str, float]]] = {}
    for i, label in enumerate(model.classes_):
        w = np.where(keep, coef[i], -np.inf)
        top = np.argsort(-w)[:top_k]
        out[str(label)] = [(_model_term(names[j], lang, placeholders), float(coef[i][j]))
                           for j in top if np.isfinite(w[j])]
    return out


def _model_term(name: str, lang: str, placeholders: bool) -> str:
    block, _, term = name.partition("__")
    if block == "meta":
        return _readable_meta(term, lang)
    label = _PLACEHOLDER_LABELS.get(term) if placeholders else None
    return "⟨" + tr(*label, lang) + "⟩" if label is not None else term


def _threshold_of(model: Any, index: int) -> float:
    """The confidence a category needs to be routed (per category when the model has them)."""
    of = getattr(model, "threshold_of", None)
    return float(of(index)) if callable(of) else float(model.threshold_)
