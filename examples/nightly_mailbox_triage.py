"""A scheduled triage job in a few lines of Python (what `assoc-ai triage run` does, embeddable).

    python examples/nightly_mailbox_triage.py --config examples/triage_local.toml --dry-run
    python examples/nightly_mailbox_triage.py --config examples/triage_local.toml --deliver examples/mailbox/new

``--deliver FOLDER`` first puts the ``.eml`` files of FOLDER into a local Maildir's INBOX (a demo without a mail
server: see examples/triage_local.toml). The exit code follows docs/scheduled-jobs.md (0 ok, 1 some actions to
retry, 2 configuration, 3 login, 75 try later).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from assoc_ai_core.errors import AssocAIError
from assoc_ai_core.jobs.triage import TriageSettings, build_connector, run_triage


def deliver(settings: TriageSettings, folder: Path) -> int:
    """Copy every .eml file of ``folder`` into the mailbox's INBOX (local Maildir only)."""
    connector = build_connector(settings)
    connector.open()
    try:
        files = sorted(folder.glob("*.eml"))
        for path in files:
            connector.deliver(path.read_bytes())  # type: ignore[attr-defined]  # LocalMailConnector.deliver
        return len(files)
    finally:
        connector.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="One triage pass over the configured mailbox.")
    parser.add_argument("--config", required=True, help="TOML configuration (see docs/configuration.md)")
    parser.add_argument("--dry-run", action="store_true", help="decide and record, touch nothing")
    parser.add_argument("--deliver", type=Path, help="first deliver these .eml files (local Maildir demo)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = TriageSettings.load(args.config)
        if args.deliver:
            print(f"{deliver(settings, args.deliver)} messages delivered to the INBOX")
        report = run_triage(settings, dry_run=args.dry_run or None)
    except AssocAIError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    for would in report.would:  # only filled in a dry run
        actions = ", ".join(f"{a['kind']} → {a['target']}" for a in would["actions"])
        print(f"{would['key']}: {would['decision']} {would['category'] or '—'} ⇒ {actions or '-'}")
    print(report.summary())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
