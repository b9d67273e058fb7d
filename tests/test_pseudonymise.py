"""Personal data replaced by typed placeholders."""

from assoc_ai_core.pseudonymise import pseudonymise


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
