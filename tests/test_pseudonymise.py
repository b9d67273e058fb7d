"""Personal data replaced by typed placeholders."""

from hypothesis import given, settings
from hypothesis import strategies as st

from assoc_ai_core.mail.pseudonymise import pseudonymise


def test_emails_urls_phones():
    out = pseudonymise("Contact : jean.dupont+asso@exemple.fr, https://asso.test/page?id=3, www.asso.test, "
                       "tél. 06 12 34 56 78 ou 01.23.45.67.89 ou +33 5 53 41 27 88 ou 0553412788")
    assert out.count("<EMAIL>") == 1 and out.count("<URL>") == 2 and out.count("<PHONE>") == 4
    assert "dupont" not in out and "06 12" not in out


def test_iban_only_when_checksum_valid():
    assert "<IBAN>" in pseudonymise("IBAN : FR76 3000 6000 0112 3456 7890 189")
    assert "<IBAN>" not in pseudonymise("Référence FR12 3456 7890 1234 5678 9012 345")


def test_french_postal_address_and_names():
    out = pseudonymise("J'habite 4, rue du Puits-Salé 24100 Montclaret. Signé Simone Delorme", names=["Simone Delorme"])
    assert "<ADDRESS>" in out and "<NAME> <NAME>" in out
    for gone in ("Puits", "24100", "Montclaret", "Simone"):
        assert gone not in out
    assert pseudonymise("Envoyez à l'adresse 75011 Paris") == "Envoyez à l'adresse <POSTCODE>"


def test_plain_text_untouched():
    text = "Je voudrais adhérer pour la saison 2025, cotisation de 15 euros."
    assert pseudonymise(text) == text


def test_prefixes_and_boundaries_of_the_digit_first_patterns():
    # The patterns start at a digit and check what is behind it; these are the cases that check covers.
    assert pseudonymise("Écrire à F-75011 Paris") == "Écrire à <POSTCODE>"
    assert pseudonymise("Code XF-75011 Paris") == "Code XF-<POSTCODE>"  # "F-" inside a word is not a country
    # Digits glued to a word are no postcode; after "réf" they are a reference number.
    assert pseudonymise("réf A75011 Paris") == "réf <NUMBER> Paris"
    assert pseudonymise("lot A12 rue Haute") == "lot A12 rue Haute"  # no word boundary before "12"
    assert pseudonymise("au 12 bis rue Haute") == "au <ADDRESS>"
    assert pseudonymise("Service BP 4012, cs 30012 ou Cedex 9") == "Service <POSTCODE>, <POSTCODE> ou <POSTCODE>"
    assert pseudonymise("appelez le +33 6 12 34 56 78") == "appelez le <PHONE>"
    assert pseudonymise("compte DE89 3704 0044 0532 0130 00 merci") == "compte <IBAN> merci"


def test_names_are_found_whatever_their_case():
    assert pseudonymise("Merci, BİLSAG et bilsag", names=["Bilsag"]) == "Merci, <NAME> et <NAME>"
    assert pseudonymise("Signé STRAUß", names=["Strauß"]) == "Signé <NAME>"
    assert pseudonymise("Aucun nom ici", names=["Delorme"]) == "Aucun nom ici"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "b.", "@", ".", "-", "+", "'", "é", " ", "x.y", "@@", ".com", "_", "\n", "<"]),
                max_size=14))
def test_addresses_are_found_as_the_pattern_finds_them(pieces: list[str]):
    from assoc_ai_core.mail.pseudonymise import _EMAIL_RE, _URL_RE, EMAIL, URL, _emails, mask_addresses_and_links

    text = "".join(pieces)
    assert _emails(text) == [m.span() for m in _EMAIL_RE.finditer(text)]
    assert mask_addresses_and_links(text) == _URL_RE.sub(URL, _EMAIL_RE.sub(EMAIL, text))


def test_a_long_run_before_an_at_sign_is_read_once():
    from assoc_ai_core.mail.pseudonymise import _emails

    # "x@ aaaa…" took 8 s a pass at 50 KB: the pattern re-read the run from each of its letters.
    assert _emails("x@ " + "a" * 2_000_000) == []
    assert pseudonymise("a" * 100_000 + "@exemple.fr ok") == "<EMAIL> ok"
