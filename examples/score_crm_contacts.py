"""Score an association's contacts and write the scores back to the CRM — dry run first.

    python examples/score_crm_contacts.py                 # on a made-up association, in a temporary folder
    python examples/score_crm_contacts.py assoc_ai.toml   # on your own CRM ([crm] section), still a dry run
    python examples/score_crm_contacts.py assoc_ai.toml --apply

Steps: read people, gifts, memberships... through the CRM connector; train a
donor-propensity model with the chronological check; score everyone who did
not object to profiling; show three explanations; compute the diff of what
would be written to the CRM; write it only with ``--apply``.
Needs the people extra: pip install 'assoc-ai-core[people]'.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from assoc_ai_core.i18n import decimal, percent, tr
from assoc_ai_core.people.dataset import connector_from_config, load_people
from assoc_ai_core.people.tasks import predict_people, scores_from_predictions, train_people_model


def demo_config(folder: Path) -> Path:
    """Write a made-up association as French CSV exports, and a config pointing at them."""
    from assoc_ai_core.people.synthetic import generate_people, write_exports

    write_exports(generate_people(800, seed=11), folder / "exports")
    config = folder / "assoc_ai.toml"
    config.write_text(
        '[crm]\nconnector = "files"\npath = "exports"\noutput = "scores_crm.csv"\n'
        '[crm.mapping]\nemail = "Courriel"\n',  # how a column with another title would be named
        encoding="utf-8",
    )
    config.chmod(0o600)
    return config


def main(argv: list[str]) -> None:
    """Run the example."""
    apply = "--apply" in argv
    paths = [a for a in argv if not a.startswith("--")]
    tmp = None
    if paths:
        config = Path(paths[0])
    else:
        tmp = tempfile.TemporaryDirectory(prefix="assoc-ai-example-")
        config = demo_config(Path(tmp.name))
    try:
        from assoc_ai_core.default_plugins import people_files
        from assoc_ai_core.ext.plugins import connector_registry, register_plugin

        if "files" not in connector_registry().ids():  # older cores: the files connector is not a default plugin yet
            register_plugin(people_files, name="assoc_ai_core.default_plugins.people_files")
        connector = connector_from_config(config)
        people = load_people(connector)
        print(tr(f"Lu : {people.summary()}", f"Read: {people.summary()}"))

        model = train_people_model(people, "donor-propensity")
        m = model.metadata_["evaluation"]["metrics"]
        print(tr(f"Vérification chronologique : AUC {decimal(m['roc_auc'], 2, 'fr')}, taux réel {percent(m['base_rate'])}, "
                 f"probabilité moyenne {percent(m['mean_prediction'])}",
                 f"Chronological check: AUC {m['roc_auc']:.2f}, actual rate {percent(m['base_rate'])}, "
                 f"mean probability {percent(m['mean_prediction'])}"))

        scored = predict_people(model, people)
        print(tr(f"{len(scored)} personnes notées ; {scored.attrs['excluded_do_not_profile']} exclues (opposition au profilage).",
                 f"{len(scored)} people scored; {scored.attrs['excluded_do_not_profile']} left out (objected to profiling)."))
        for row in scored.head(3).itertuples():
            print(f"  {row.person_id}: {row.explanation}")

        scores = scores_from_predictions(model, scored, source=connector.id)
        with connector:
            connector.ensure_fields(task=model.task, dry_run=not apply)
            report = connector.write_scores(scores, dry_run=not apply)
        print(tr(f"Écriture {'faite' if apply else 'simulée'} vers {report.target} : {report.counts}",
                 f"Write {'done' if apply else 'simulated'} to {report.target}: {report.counts}"))
        for diff in report.diffs[:2]:
            print(f"  {diff.record_id}: {dict(diff.before)} → {dict(diff.after)}")
        if not apply:
            print(tr("Rien n'a été écrit. Relancez avec --apply pour écrire.", "Nothing was written. Run again with --apply to write."))
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
