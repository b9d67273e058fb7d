"""A volunteer's script: learn from sorted mail, classify a folder of new mail, explain each decision.

    python examples/classify_a_folder_of_emails.py examples/mailbox/train examples/mailbox/new

No server and no account: folders of .eml files (one sub-folder per category
for the sorted mail), a Maildir, an mbox or a CSV export all work.
"""

from __future__ import annotations

import sys

from assoc_ai_core import explain, load_dataset, predict, save_model, train


def main(sorted_mail: str, new_mail: str) -> None:
    """Train on ``sorted_mail`` and print a decision and a reason for each message of ``new_mail``."""
    training = load_dataset(sorted_mail)
    for source, reason in training.problems:
        print(f"illisible, ignoré : {source} ({reason})")
    model = train(training.labelled(), target_precision=0.95)
    save_model(model, "model.skops")
    print(f"{model.metadata_['expected_auto_share']:.0%} du courrier devrait être classé automatiquement.")

    new = load_dataset(new_mail, labelled=False).messages
    for message, prediction in zip(new, predict(model, new), strict=True):
        print(f"\n{message.source}: {prediction.label} ({prediction.probability:.0%}) -> {prediction.decision}")
        if message.error is None:
            print("  " + explain(model, message).sentence)
        else:
            print(f"  à vérifier : {prediction.reason}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python classify_a_folder_of_emails.py SORTED_MAIL_FOLDER NEW_MAIL_FOLDER")
    main(sys.argv[1], sys.argv[2])
