"""What the *word* features count as a word, and the French and English function words they leave out.

Function words carry no intent ("de", "pour", "vous") and would crowd the
explanations; the character features still see them.  Kept short on purpose:
negations and question words ("pas", "comment", "quand", "don't") stay, since
they change a request.
"""

__all__ = ["WORD_TOKEN", "FRENCH_STOP_WORDS", "ENGLISH_STOP_WORDS"]

# Hyphens inside keep "peut-être" and "e-mail" whole; single letters (the elided "l'", "d'") say nothing.
# An English contraction keeps its ending: without it "don't" and "can't" were the words "don" and "can",
# the negation lost.  Only those endings: a French elision ("qu'il", "aujourd'hui") still splits.
WORD_TOKEN = r"(?u)\b\w[\w-]*\w(?:['’](?:t|s|re|ve|ll|d|m)(?!\w))?(?!\w)"

FRENCH_STOP_WORDS = frozenset(
    """
    a à au aux avec ce ces cet cette ceux celle celles celui chez dans de des du elle elles en et eu
    il ils je la le les leur leurs lui ma mais me mes moi mon ne nos notre nous on ou par
    qu que qui sa se ses si son sur ta te tes toi ton tu un une vos votre vous été être avoir
    ai as avons avez ont est sont suis es sommes êtes était étaient sera serai serait seraient ayant
    ça cela ceci là ici car donc or ni puis alors ainsi aussi bien très tout tous toute toutes
    fait faire peu plus moins même autre autres chaque quelque quelques leurs dont lequel laquelle
    lesquels lesquelles auquel duquel bonjour madame monsieur mesdames messieurs bonsoir salut
    cordialement merci pour
    """.split()
)


# Written for mail rather than taken from scikit-learn's list, which also drops content words
# such as "bill", "call", "move", "system" or "interest": in a mailbox those name requests.
ENGLISH_STOP_WORDS = frozenset(
    """
    a an the and or but nor so yet if then than as of at by for from in into on onto to with without
    about over under up down out off this that these those there here it its i me my mine we us our ours
    you your yours he him his she her hers they them their theirs who whom whose which what
    is am are was were be been being have has had having do does did done will would shall should
    can could may might must also just very too more most such own same both each other
    all any some few again further once only hello hi dear thanks thank regards best
    it's that's there's what's let's here's who's we're you're they're we've you've they've we'll you'll
    they'll it'll he's she's he'd she'd we'd you'd they'd it’s that’s there’s what’s let’s we’re you’re
    they’re we’ve you’ve they’ve we’ll you’ll they’ll he’s she’s
    """.split()
)
