"""When the AI hands over to a human, per the agent's escalation policy: the visitor asks for
one, sensitive keywords, or the AI abstained too often. The routing layer adds queues, teams
and further triggers on top of the decision made here. See docs/subsystems/agents.md.

The "ask for a human" detector is rules, not a model: deterministic, about 0.1 ms a message,
and every decision names the rule that made it (`human_request`). The text is normalised
(case, accents, apostrophes, stretched letters, common typos and chat spellings), split into
clauses, and other senses of the person nouns are masked ("travel agent", "per person",
"human resources", "user agent string"). A clause asks for a human when a contact verb reaches
a person ("speak to someone"), a request names one ("get me a real person"), the clause is
only a person ("agent!!"), the visitor asks to be transferred, asks whether anyone is there,
rejects the bot or asks to be called back; in English, and the basics in Spanish, French,
German, Dutch, Portuguese and Italian. "Am I talking to a bot?" counts only when it is all
the visitor wrote. A negation up to five words before the ask cancels it ("no need to
transfer me", "je ne veux parler à personne"); a question about necessity, a hypothesis or a
past event is no ask ("do I need to talk to someone to cancel?", "I managed to talk to
someone"). The phrase lists in apps/agents/tests/test_escalation.py are its specification.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

# --- the "ask for a human" detector -----------------------------------------------------------

# Misspellings and chat spellings: token → replacement (which may be two words).
# fmt: off
_SPELLING = {
    "humna": "human", "huamn": "human", "hooman": "human", "humen": "human", "humam": "human", "hman": "human",
    "hmuan": "human", "persn": "person", "preson": "person", "pesron": "person", "perosn": "person",
    "agnet": "agent", "aegnt": "agent", "agnt": "agent", "agetn": "agent", "tlak": "talk", "tak": "talk",
    "talke": "talk", "speek": "speak", "spek": "speak", "spaek": "speak", "sepak": "speak", "chta": "chat",
    "conect": "connect", "conenct": "connect", "trasnfer": "transfer", "tranfer": "transfer",
    "transfere": "transfer", "pls": "please", "plz": "please", "plez": "please", "pleas": "please",
    "u": "you", "ur": "your", "r": "are", "ppl": "people", "sum1": "someone", "some1": "someone",
    "som1": "someone", "wanna": "want to", "gimme": "give me", "lemme": "let me", "im": "i am",
    "callback": "call back", "w": "with", "2": "to",
}
# fmt: on
# Long words whose one-letter slips are corrected too ("reprsentative", "operater", "somone").
_FUZZY = ("representative", "operator", "someone", "somebody", "supervisor", "customer", "medewerker", "mitarbeiter")

# Person nouns. The English ones serve the English rules; the others only the rules of their
# language (and the one-word clause), so "I want mens shoes" is not Dutch for "a human".
_EN = (
    r"humans?|persons?|someone|somebody|agents?|representatives?|reps?|operators?|staff|staffer|employees?"
    r"|managers?|supervisors?|advis[eo]rs?|consultants?|colleagues?|custservice|suppteam|salesteam|helpdesk"
    r"|teammember|livechat|realpeople"
)
_ML = (
    r"persona|humano|agente|asesora?|operadora?|alguien|representante|ejecutivo|humain|personne|conseillere?"
    r"|quelquun|operateur|menschen|mensch|mitarbeiter(?:in|n)?|berater(?:in)?|jemand(?:em|en)?|kundendienst"
    r"|kundenservice|mens|medewerker|persoon|iemand|klantenservice|pessoa|atendente|umano|operatore|qualcuno"
)
_WEAK = r"anyone|anybody|people"  # only after a contact verb ("talk to anyone"), never alone
# Words that may stand between a verb and its person: "to one of your real, live agents".
_DET = (
    r"(?:(?:a|an|the|your|some|one|of|any|another|other|different|real|actual|live|living|breathing|proper"
    r"|genuine|flesh|and|blood|human|true|single|qualified|senior|un|una|uno|une|ein|einen|einem|einer|eine|een"
    r"|um|uma|echte[nmr]?|echt|vrai|vraie|de|del|la|le|el|al|du|der|die|dem|den|het|uw|votre|su|sua|vostro)\s+)*"
)
_DEPT = (
    r"sales|billing|support|accounts|accounting|finance|team|department|dept|desk|service|services|tech|technical"
    r"|reception|office|custservice|suppteam|salesteam|helpdesk"
)
_FILLER = re.compile(
    r"please|now|asap|hi|hello|hey|ok|okay|yes|yeah|just|a|an|the|real|live|actual|some|one|right|away"
    r"|immediately|again|por|favor|sil|vous|plait|te|bitte|jetzt|alstublieft|graag|aub|svp|pfv|ya|ahora|un|una"
    r"|uno|une|ein|einen|eine|een|echte|echt|vraie|vrai|per|favore|wait|so|hmm|um|seriously|honestly"
)
_MERGE = [  # people named in several words → one token (before masking)
    (r"\bhuman beings?\b", "human"),
    (
        r"\bcustomer (?:service|services|care|support)"
        r"(?: (?:reps?|representatives?|agents?|team|person|people|desk))?\b",
        "custservice",
    ),
    (r"\bsupport (?:team|staff|agents?|person|people|reps?|desk)\b", "suppteam"),
    (r"\bsales (?:team|reps?|person|people|department|agents?)\b", "salesteam"),
    (r"\b(?:help|service) desk\b", "helpdesk"),
    (r"\bteam members?\b", "teammember"),
    (r"\b(?:real|actual|live) (?:people|persons)\b", "realpeople"),
    (
        r"\blive (?:chat|support|help)\b(?! (?:with|to|widget|plugin|software|feature|button|window|app|tool|on|in))",
        "livechat",
    ),
]
_MASK = [  # other senses of the person nouns → "xnoun"
    r"\b(?:travel|insurance|estate|user|secret|booking|shipping|customs|cleaning|chemical|free|double|ai|virtual"
    r"|bot|software|property|letting|literary|sports|talent|undercover|federal|fbi|ticketing|rental|leasing"
    r"|release|build|monitoring|backup|deploy|llm|voice|(?<!live )chat) agents?\b",
    r"\b(?:per|in|first|second|third|missing|each|every|contact|business|legal|natural) persons?\b",
    r"\bperson to person\b",
    r"\b(?:mobile|network|and|or|not|logical|boolean|comparison|search|query|filter|telecom|wildcard|ternary"
    r"|machine|crane|forklift) operators?\b",
    r"\b(?:password|file|package|task|tag|download|window|device|extension|ads?|display|session|node|version"
    r"|secrets?|dependency|plugin|event|resource|memory) managers?\b",
    r"\bhumans? (?:resources|errors?|rights|readable|body|bodies|nature|consumption|trafficking|genome"
    r"|anatomy|capital|interest|race|history|hair|skin)\b",
    r"\b(?:agents?|persons?|people|humans?|representatives?|operators?|staff|someone|somebody)"
    r" (?:fees?|strings?|licen[cs]es?|commissions?|api|sdk|software|code|portal|login|dashboard"
    r"|seats?|limits?|ids?|field|profile|payments?|sample|mode|roles?|permissions?|pricing|plans?|accounts?"
    r"|count|settings?|versions?|config|configuration|prompts?|templates?|tools?|orange|smith|persona)\b",
]
_NORMALISE = [(re.compile(p), r) for p, r in _MERGE] + [(re.compile(p), "xnoun") for p in _MASK]
# A refusal cancels an ask it comes shortly before ("no need to transfer me"), unless the
# clause asks why ("why can't I talk to a person") or the negation is about something else.
_NEG = re.compile(
    r"\b(?:dont|doesnt|didnt|wont|wouldnt|shouldnt|neednt|never|not|without|nicht|kein|keine|keinen|niet|geen|ne"
    r"|pas|jamais|nunca|nao|non|no (?:need|reason|point|quiero|necesito|deseo|want))\b"
)
_NEG_EXCEPT = re.compile(r"(?:know|mind|understand|see|care|able)\b")  # "I don't know how to reach an agent"
_NEG_REACH = 5  # words between the negation and the ask
_PAST = re.compile(r"\b(?:managed to|was able to|were able to|did|got to|used to)(?:\s+\S+){1,3}$")
_HYPOTHETICAL = re.compile(
    r"\b(?:after|before|once|until|what happens (?:if|when))\s+(?:i|we|you|they|someone|visitors?|customers?)\s+\S+$"
)
_NECESSITY = re.compile(
    r"\b(?:do|does|did|will|would|should|must|if|whether)\s+(?:i|we|you|they|one|he|she)\s+"
    r"(?:really\s+|still\s+|first\s+|ever\s+|also\s+)?(?:need|have|has|got|want)\b"
)

_RULES: list[tuple[str, str, bool]] = [  # (name, pattern, cancelled by a negation before it)
    (
        "contact verb + person",
        r"\b(?:talk|talking|speak|speaking|chat|chatting|converse|contact|reach|touch|word|communicate|get through"
        rf"|get hold of|get ahold of)\s+(?:(?:to|with|into|directly|right|now|again)\s+)*{_DET}(?:{_EN}|{_WEAK})\b",
        True,
    ),
    (
        "contact verb + person",
        r"\b(?:hablar|platicar|conversar|comunicarme|parler|discuter|sprechen|reden|spreken|praten|falar|parlare)"
        rf"\s+(?:\S+\s+){{0,5}}?(?:{_EN}|{_ML})\b"
        rf"|\b(?:{_EN}|{_ML})\s+(?:\S+\s+){{0,3}}?(?:sprechen|reden|spreken|praten|falar|parlare|hablar|parler)\b",
        True,
    ),
    (
        "request for a person",
        r"\b(?:want|wanted|need|require|prefer|rather|would (?:like|love|prefer)|get me|give me|find me|bring me"
        r"|send me|(?:can|could|may) (?:i|we) (?:get|have|see)|let me (?:have|see)|(?:where|how) (?:can|do) i find"
        r"|get)\s+(?:(?:to|through|with|help|from|assistance|please|just|only|now|talk|speak|chat|word)\s+)*"
        rf"{_DET}(?:{_EN})\b",
        True,
    ),
    (
        "request for a person",
        r"\b(?:quiero|necesito|deseo|veux|voudrais|ich will|mochte|brauche|ik wil|quero|preciso|vorrei|voglio)\s+"
        rf"(?:\S+\s+){{0,3}}?(?:{_EN}|{_ML})\b",
        True,
    ),
    (
        "transfer request",
        r"\b(?:transfer|forward|redirect|route|connect|escalate|verbinden|verbind|transferez|transfiereme|pasame"
        r"|paseme|comunicame|passez)\s+(?:me|us|moi|mich|mij)\s*(?:over|through|across|on|back|directly)?\s*"
        r"(?:$|please|now|asap|immediately|(?:to|with|thru|a|con|avec|mit|met)\s+"
        rf"{_DET}(?:{_EN}|{_ML}|{_WEAK}|{_DEPT})\b)",
        True,
    ),
    (
        "transfer request",
        r"\b(?:put|hand|pass|send|switch)\s+(?:me|us)\s+(?:(?:over|through|on|across)\s*(?:$|please|now|to\b|with\b)"
        rf"|(?:in touch |over |through |on )?(?:to|with)\s+{_DET}(?:{_EN}|{_WEAK}|{_DEPT})\b)",
        True,
    ),
    (
        "transfer request",
        r"^(?:(?:please|can you|could you|would you|i want to|i would like to|i need to|lets|kindly|just)\s+)*"
        r"escalate(?:\s+(?:this|it|me|that|my (?:ticket|case|issue|complaint|request|problem|query)"
        r"|the (?:ticket|case|issue|matter|complaint)))?(?:\s+(?:please|now|asap|to (?:a |an |the |your )?\w+))*$",
        True,
    ),
    (
        "asks for someone to talk to",
        rf"\b(?:is|are)\s+there\s+(?:a|an|any|some)?\s*(?:real\s+|live\s+|actual\s+)?(?:{_EN}|anyone|anybody)\b"
        rf"|\b(?:is|are)\s+(?:a|an|any|some|the|your)?\s*(?:real\s+|live\s+)?(?:{_EN}|anyone|anybody)\s+"
        r"(?:there|around|available|online|here|awake)\b"
        r"|^(?:(?:hello|hi|hey)\s+)?(?:anyone|anybody|somebody|someone)\s+(?:there|here|around|home|available|alive)$"
        r"|\bwho\s+(?:can|could|should|may)\s+(?:i|we)\s+(?:talk|speak|chat)\s+(?:to|with)\b",
        True,
    ),
    (
        "rejects the bot",
        r"\b(?:stop|quit|enough with|no more|done with|tired of|sick of|fed up with|get me out of|skip|bypass|get past)"
        r"\s+(?:talking to\s+|chatting with\s+)?(?:the|this|your|a|an)?\s*(?:stupid\s+|useless\s+)?"
        r"(?:bot|bots|robot|robots|chatbot|machine|ai|automated (?:system|assistant))"
        r"(?:\s+(?:please|now|anymore|already|thing|and\b.*))?$"
        r"|\b(?:dont|do not|no)\s+(?:want|wanna|like|need)\s+(?:to\s+(?:talk|speak|chat)\s+(?:to|with)\s+)?"
        r"(?:a|an|the|this|your|any)?\s*(?:bot|bots|robot|robots|chatbot|machine|ai|computer)"
        r"(?:\s+(?:please|anymore|any more|thanks))?$"
        r"|^no\s+(?:more\s+)?(?:bots?|robots?|chatbots?|ai)(?:\s+please)?$",
        False,
    ),
    (
        "callback request",
        r"\b(?:call|ring|phone)\s+(?:me|us)(?:\s+(?:back|up))?"
        r"(?:$|\s+(?:please|now|asap|at|on|today|tomorrow|tonight|later|when|as soon|right|this|back|in|instead))"
        r"|\bgive\s+(?:me|us)\s+a\s+(?:call|ring|phone call)\b"
        r"|^(?:please\s+)?(?:a\s+)?call back(?:\s+please)?$"
        r"|\b(?:request|schedule|book|arrange|want|need|like|prefer|have|get)\s+(?:a\s+|an\s+)?"
        r"(?:call back|phone call|call)(?:$|\s+(?:please|from|asap|today|tomorrow|at|on|when|as))"
        r"|\b(?:rappele[rz]?|rappelle|llamame|llameme|llamenme|bel)\s+(?:moi|me|mij)?\b(?:\s+terug)?(?!\s+\w)"
        r"|\b(?:ruf|rufen sie|rufe)\s+mich\s+(?:bitte\s+)?(?:zuruck|an)\b|\b(?:ligue|liga)\s*me\b|\brichiamami\b",
        True,
    ),
    (
        "a person, please",
        r"\b(?:can|could|will|would|may)\s+(?:a\s+|an\s+|some\s+|one of your\s+|your\s+)?(?:real\s+|live\s+)?"
        r"(?:human|person|agent|representative|operator|employee|manager|supervisor|custservice|suppteam|teammember)"
        r"\s+(?:please\s+)?(?:help|assist|look|check|review|handle|take|call|contact|phone|ring|get back|reply"
        r"|respond)\b(?:\s+\S+){0,2}?\s+(?:me|my|us|our|this|it)\b",
        True,
    ),
]
_COMPILED = [(name, re.compile(pattern), negatable) for name, pattern, negatable in _RULES]
# Asking what they are talking to is an ask for a person only when it is all the visitor wrote:
# "are you a real person? anyway, how do I renew my licence" wants the answer, not a queue.
_IDENTITY = re.compile(
    r"^(?:(?:hello|hi|hey|wait|so|seriously|honestly)\s+)*(?:am\s+i\s+(?:talking|speaking|chatting|writing)\s+"
    r"(?:to|with)\s+(?:a\s+|an\s+)?(?:real\s+)?(?:bot|robot|machine|computer|ai|chatbot|person|human)"
    r"|(?:is\s+this|are\s+you)\s+(?:a\s+)?(?:real\s+(?:person|human)|human|bot|robot)"
    r"(?:\s+or\s+(?:a\s+)?(?:bot|robot|machine|ai|real person|human))?)(?:\s+(?:or what|right|really))?$"
)
_PERSON = re.compile(rf"{_EN}|{_ML}")


def _one_edit_apart(a: str, b: str) -> bool:
    """True when `a` and `b` differ by one insertion, deletion, substitution or swap."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :] or (a[i : i + 2] == b[i : i + 2][::-1] and a[i + 2 :] == b[i + 2 :])
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1 :] == shorter[i:]


def _spelling(word: str) -> str:
    if word in _SPELLING:
        return _SPELLING[word]
    if len(word) >= 6:
        for target in _FUZZY:
            if word != target + "s" and _one_edit_apart(word, target):
                return target
    return word


def _clauses(text: str) -> list[str]:
    """Lower-case ASCII clauses of `text`, spelling fixed, people merged, other senses masked."""
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    text = re.sub(r"(?<=[a-z])['’‘`´](?=[a-z])", "", text)  # don't → dont, quelqu'un → quelquun
    text = re.sub(r"([a-z])\1{2,}", r"\1", text)  # humaaan → human
    clauses = []
    for part in re.split(r"[.!?¿¡;:,()\[\]\n]+|\b(?:but|however|pero|mais|aber|maar|ma)\b", text):
        clause = " ".join(_spelling(w) for w in re.findall(r"[a-z0-9ß]+", part))
        clause = re.sub(r"\bi? ?d (like|love|prefer|rather)\b", r"i would \1", clause)  # i'd like
        for pattern, replacement in _NORMALISE:
            clause = pattern.sub(replacement, clause)
        if clause:
            clauses.append(clause)
    return clauses


def _cancelled(prefix: str, matched: str) -> bool:
    """Whether what precedes an ask in its clause makes it no ask: a negation shortly before
    it, a question about necessity, a hypothesis or a past event."""
    words = matched.split()
    head = prefix + words[0]
    if _PAST.search(head) or _NECESSITY.search(head) or _HYPOTHETICAL.search(head):
        return True
    before = prefix + " ".join(words[:-1])  # the negation may sit inside: "möchte nicht mit einem Menschen"
    negations = list(_NEG.finditer(before))
    if not negations or "why" in before[: negations[-1].start()].split():
        return False
    after = before[negations[-1].end() :].split()
    return len(after) - len(words[:-1]) <= _NEG_REACH and not _NEG_EXCEPT.match(" ".join(after))


def human_request(text: str) -> str | None:
    """Which rule finds an ask for a person in `text`, with the words it matched; None when
    there is none. Deterministic; the rules are described in the module docstring."""
    clauses = _clauses(" ".join((text or "")[:2000].split()))
    said = [c for c in clauses if not all(_FILLER.fullmatch(w) for w in c.split())]
    if len(said) == 1 and _IDENTITY.match(said[0]):
        return f"asks whether it is a bot: {said[0]!r}"
    for clause in clauses:
        words = clause.split()
        if any(_PERSON.fullmatch(w) for w in words) and all(
            _PERSON.fullmatch(w) or _FILLER.fullmatch(w) for w in words
        ):
            return f"a person, alone: {clause!r}"
        for name, pattern, negatable in _COMPILED:
            for match in pattern.finditer(clause):
                if negatable and _cancelled(clause[: match.start()], match.group()):
                    continue
                return f"{name}: {match.group().strip()!r}"
    return None


def wants_human(text: str) -> bool:
    """True when the visitor asks to be put through to a person (see `human_request`)."""
    return human_request(text) is not None


_YES = re.compile(
    r"^(?:oh |well )?(?:yes|yeah|yep|yup|sure|ok|okay|please|please do|go ahead|do it|that would be great|"
    r"si|sí|vale|claro|oui|d'accord|volontiers|ja|gerne|bitte|klar)"
    r"(?:[\s,!.]+(?:yes|please|thanks|thank you|por favor|gracias|merci|s'il vous plait|s'il vous plaît|"
    r"bitte|danke|go ahead))*[\s!.]*$",
    re.IGNORECASE,
)


def accepts_offer(previous_reply: str, text: str) -> bool:
    """True when the AI's previous reply offered to bring in a person and the visitor says yes."""
    from .smalltalk import offers_person

    return bool(previous_reply) and offers_person(previous_reply) and bool(_YES.match(" ".join(text.split())))


# --- the other triggers -------------------------------------------------------------------------
def policy_value(policy: dict[str, Any], key: str, field: str = "enabled", default: Any = None) -> Any:
    entry = policy.get(key)
    if isinstance(entry, dict):
        return entry.get(field, default)
    if field == "enabled" and isinstance(entry, bool):
        return entry
    return default


def keyword_hit(policy: dict[str, Any], text: str) -> str | None:
    """The first sensitive keyword of the policy found in `text` (whole words), if enabled."""
    if not policy_value(policy, "keywords"):
        return None
    lowered = text.lower()
    for word in policy_value(policy, "keywords", "words", []) or []:
        word = str(word).strip().lower()
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", lowered):
            return word
    return None


def abstention_limit(policy: dict[str, Any]) -> int | None:
    if not policy_value(policy, "abstentions"):
        return None
    return max(1, int(policy_value(policy, "abstentions", "threshold", 2) or 2))


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    """VADER's compound score of `text`: -1 (very negative) to 1 (very positive)."""
    return float(_vader().polarity_scores(text or "")["compound"])


def negative_sentiment(policy: dict[str, Any], text: str) -> float | None:
    """The compound score when the policy's negative-sentiment trigger fires, else None."""
    if not policy_value(policy, "negative_sentiment"):
        return None
    threshold = float(policy_value(policy, "negative_sentiment", "threshold", -0.5) or -0.5)
    score = sentiment(text)
    return score if score <= threshold else None


def too_many_turns(policy: dict[str, Any], visitor_turns: int) -> int | None:
    """The turn count when the max-turns trigger fires, else None."""
    if not policy_value(policy, "max_turns"):
        return None
    limit = max(1, int(policy_value(policy, "max_turns", "threshold", 12) or 12))
    return visitor_turns if visitor_turns > limit else None


def is_vip(policy: dict[str, Any], contact: Any, attributes: dict[str, Any]) -> bool:
    """The VIP trigger: the contact (or conversation) carries a truthy `vip` attribute."""
    if not policy_value(policy, "vip"):
        return False
    values = [attributes.get("vip"), (getattr(contact, "attributes", None) or {}).get("vip")]
    return any(str(v).lower() in ("1", "true", "yes") for v in values if v is not None)
