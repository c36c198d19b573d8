"""Small talk: recognising messages that are only pleasantries, and the fixed replies to them.

`classify(text)` says whether a message is *nothing but* a greeting, thanks, a goodbye, an
acknowledgement, a question about the assistant itself ("who are you?", "are you a bot?") or
a request for help that does not yet say with what ("hello, I have a question": "invite",
answered by asking what the visitor would like to know).
A message that also asks something ("hi, how do I renew my licence?") is not small talk: the
runtime retrieves for it as usual. The runtime uses this to skip retrieval; the offline
responder to answer politely without citations; `followup.standalone_query` to leave such
messages alone.

Matching is on whole phrases of a small multilingual lexicon (English first, plus the most
common Spanish, French and German forms), so it is deterministic and explainable. See
docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Kind = Literal["greeting", "thanks", "goodbye", "ack", "identity", "invite"]

# Phrases, lower case, words separated by one space. Longest match wins at each position.
_PHRASES: dict[Kind, tuple[str, ...]] = {
    "greeting": (
        "hi",
        "hii",
        "hiya",
        "hello",
        "helo",
        "hallo",
        "hey",
        "heya",
        "howdy",
        "greetings",
        "yo",
        "hola",
        "bonjour",
        "salut",
        "guten tag",
        "good morning",
        "good afternoon",
        "good evening",
        "good day",
        "morning",
        "evening",
        "how are you",
        "how are you doing",
        "how r u",
        "how is it going",
        "hows it going",
        "how s it going",
        "what s up",
        "whats up",
        "sup",
        "nice to meet you",
        "pleased to meet you",
        "buenos dias",
        "buenas tardes",
        "buenas noches",
        "como estas",
        "ca va",
        "comment ca va",
        "wie geht s",
        "wie geht es dir",
        "servus",
        "moin",
    ),
    "thanks": (
        "thanks",
        "thank you",
        "thankyou",
        "thx",
        "thanx",
        "ty",
        "tysm",
        "cheers",
        "many thanks",
        "thanks a lot",
        "thanks a bunch",
        "thank you very much",
        "thank you so much",
        "thanks so much",
        "much appreciated",
        "appreciate it",
        "i appreciate it",
        "i appreciate that",
        "appreciated",
        "that was helpful",
        "that helps",
        "that helped",
        "very helpful",
        "helpful",
        "merci",
        "merci beaucoup",
        "gracias",
        "muchas gracias",
        "danke",
        "danke schon",
        "vielen dank",
    ),
    "goodbye": (
        "bye",
        "bye bye",
        "goodbye",
        "good bye",
        "see you",
        "see ya",
        "see you later",
        "later",
        "take care",
        "have a nice day",
        "have a good day",
        "have a great day",
        "have a good one",
        "good night",
        "that s all",
        "thats all",
        "that is all",
        "that s it",
        "thats it",
        "that is it",
        "nothing else",
        "no more questions",
        "i m done",
        "im done",
        "all done",
        "adios",
        "hasta luego",
        "au revoir",
        "a bientot",
        "tschuss",
        "auf wiedersehen",
        "ciao",
    ),
    "ack": (
        "ok",
        "okay",
        "okey",
        "k",
        "kk",
        "sure",
        "yes",
        "yeah",
        "yep",
        "yup",
        "no",
        "nope",
        "nah",
        "got it",
        "i see",
        "understood",
        "alright",
        "all right",
        "great",
        "cool",
        "nice",
        "fine",
        "perfect",
        "awesome",
        "good",
        "sounds good",
        "makes sense",
        "that makes sense",
        "right",
        "oh",
        "ah",
        "hmm",
        "wow",
        "noted",
        "will do",
        "excellent",
        "lovely",
        "oui",
        "si",
        "ja",
        "vale",
        "d accord",
        "genial",
        "super",
    ),
    "identity": (
        "who are you",
        "what are you",
        "who is this",
        "who am i talking to",
        "who am i talking with",
        "who am i speaking to",
        "who am i speaking with",
        "what is your name",
        "what s your name",
        "whats your name",
        "are you a bot",
        "are you a robot",
        "are you human",
        "are you a human",
        "are you a person",
        "are you a real person",
        "are you real",
        "are you an ai",
        "are you ai",
        "is this a bot",
        "is this a robot",
        "is this a real person",
        "is this a human",
        "am i talking to a bot",
        "am i talking to a human",
        "am i talking to a real person",
        "am i chatting with a bot",
        "what can you do",
        "how can you help",
        "what do you do",
        "qui etes vous",
        "quien eres",
        "wer bist du",
    ),
    # Asking for help without yet saying with what: the reply invites the question.
    "invite": (
        "help",
        "help me",
        "help please",
        "i need help",
        "i need some help",
        "need help",
        "need some help",
        "can you help",
        "can you help me",
        "could you help",
        "could you help me",
        "can you help me out",
        "could you help me out",
        "can you assist me",
        "i need assistance",
        "i have a question",
        "i have some questions",
        "i have a few questions",
        "i have questions",
        "i ve got a question",
        "i got a question",
        "quick question",
        "can i ask a question",
        "can i ask you a question",
        "i have a problem",
        "i need some information",
        "i need information",
        "i need info",
        "tengo una pregunta",
        "necesito ayuda",
        "j ai une question",
        "j ai besoin d aide",
        "ich habe eine frage",
        "ich brauche hilfe",
    ),
}

# Words that may accompany pleasantries without making the message a question of its own.
_FILLER = frozenset(
    [
        "there",
        "all",
        "everyone",
        "everybody",
        "folks",
        "guys",
        "team",
        "bot",
        "assistant",
        "friend",
        "again",
        "very",
        "much",
        "so",
        "a",
        "lot",
        "really",
        "and",
        "then",
        "well",
        "oh",
        "too",
        "as",
        "always",
        "for",
        "your",
        "help",
        "the",
        "info",
        "information",
        "answer",
        "reply",
        "you",
        "please",
        "just",
        "again",
        "indeed",
        "mate",
        "dear",
        "sir",
        "madam",
    ]
)

# When several kinds occur ("thanks, bye"), the reply follows the most telling one.
_PRECEDENCE: tuple[Kind, ...] = ("identity", "goodbye", "thanks", "invite", "greeting", "ack")

_INDEX: dict[str, list[tuple[tuple[str, ...], Kind]]] = {}
for _kind, _phrases in _PHRASES.items():
    for _phrase in _phrases:
        _phrase_words = tuple(_phrase.split())
        _INDEX.setdefault(_phrase_words[0], []).append((_phrase_words, _kind))
for _entries in _INDEX.values():
    _entries.sort(key=lambda entry: -len(entry[0]))

_WORD = re.compile(r"[a-z0-9]+")
MAX_SMALLTALK_WORDS = 12


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _WORD.findall(folded.replace("'", " ").replace("’", " "))


def classify(text: str) -> Kind | None:
    """The kind of small talk `text` is made of, or None when it says or asks anything else."""
    words = _words(text or "")
    if not words or len(words) > MAX_SMALLTALK_WORDS:
        return None
    found: set[Kind] = set()
    position = 0
    while position < len(words):
        for phrase, kind in _INDEX.get(words[position], ()):
            if tuple(words[position : position + len(phrase)]) == phrase:
                found.add(kind)
                position += len(phrase)
                break
        else:
            if words[position] not in _FILLER:
                return None
            position += 1
    for kind in _PRECEDENCE:
        if kind in found:
            return kind
    return None


# --- fixed replies ------------------------------------------------------------------------

_REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello{name}! How can I help you today?",
        "thanks": "You're welcome{name}! Is there anything else I can help you with?",
        "goodbye": "Goodbye{name}, and thank you for contacting us!",
        "ack": "All right. Is there anything else you would like to know?",
        "identity": (
            "I'm the automated assistant{company}. I answer from{company_possessive} help articles and show "
            "where each answer comes from, and I can connect you with a member of the team at any time."
        ),
        "no_answer": (
            "I'm sorry, I couldn't find an answer to that in{company_possessive} help articles. "
            "Would you like me to connect you with a member of the team?"
        ),
        "unavailable": (
            "I'm sorry, I can't answer right now: our automated assistant is having a technical problem. "
            "Would you like me to connect you with a member of the team?"
        ),
        "handover": (
            "I'm passing this conversation to a member of our team. "
            "They will see everything we've discussed, so you won't need to repeat yourself."
        ),
        "restricted": (
            "That's not something I can help with here. Would you like me to connect you with a member of our team?"
        ),
        "refusal": "I can't share that. Is there something else I can help you with?",
        "invite": "Of course{name}! What would you like to know?",
    },
    "es": {
        "greeting": "¡Hola{name}! ¿En qué puedo ayudarte hoy?",
        "thanks": "¡De nada{name}! ¿Puedo ayudarte en algo más?",
        "goodbye": "¡Adiós{name}, y gracias por escribirnos!",
        "ack": "De acuerdo. ¿Hay algo más que quieras saber?",
        "identity": (
            "Soy el asistente automático{company}. Respondo a partir de los artículos de ayuda y puedo "
            "ponerte en contacto con una persona del equipo en cualquier momento."
        ),
        "no_answer": (
            "Lo siento, no he encontrado la respuesta en nuestros artículos de ayuda. "
            "¿Quieres que te ponga en contacto con una persona del equipo?"
        ),
        "unavailable": (
            "Lo siento, ahora mismo no puedo responder: nuestro asistente automático tiene un problema técnico. "
            "¿Quieres que te ponga en contacto con una persona del equipo?"
        ),
        "handover": (
            "Paso esta conversación a una persona de nuestro equipo. "
            "Verá todo lo que hemos hablado, así que no tendrás que repetir nada."
        ),
        "restricted": (
            "Eso no es algo en lo que pueda ayudarte aquí. "
            "¿Quieres que te ponga en contacto con una persona del equipo?"
        ),
        "refusal": "No puedo compartir eso. ¿Puedo ayudarte en algo más?",
        "invite": "¡Claro{name}! ¿Qué te gustaría saber?",
    },
    "fr": {
        "greeting": "Bonjour{name} ! Comment puis-je vous aider ?",
        "thanks": "Je vous en prie{name} ! Puis-je vous aider pour autre chose ?",
        "goodbye": "Au revoir{name}, et merci de nous avoir contactés !",
        "ack": "Très bien. Souhaitez-vous savoir autre chose ?",
        "identity": (
            "Je suis l'assistant automatique{company}. Je réponds à partir des articles d'aide et je peux "
            "vous mettre en relation avec une personne de l'équipe à tout moment."
        ),
        "no_answer": (
            "Désolé, je n'ai pas trouvé la réponse dans nos articles d'aide. "
            "Voulez-vous que je vous mette en relation avec une personne de l'équipe ?"
        ),
        "unavailable": (
            "Désolé, je ne peux pas répondre pour le moment : notre assistant automatique rencontre un problème "
            "technique. Voulez-vous que je vous mette en relation avec une personne de l'équipe ?"
        ),
        "handover": (
            "Je transmets cette conversation à une personne de notre équipe. "
            "Elle verra tout notre échange, vous n'aurez rien à répéter."
        ),
        "restricted": (
            "Je ne peux pas vous aider sur ce sujet ici. "
            "Voulez-vous que je vous mette en relation avec une personne de l'équipe ?"
        ),
        "refusal": "Je ne peux pas partager cela. Puis-je vous aider pour autre chose ?",
        "invite": "Bien sûr{name} ! Que souhaitez-vous savoir ?",
    },
    "de": {
        "greeting": "Hallo{name}! Wie kann ich Ihnen helfen?",
        "thanks": "Gern geschehen{name}! Kann ich Ihnen sonst noch helfen?",
        "goodbye": "Auf Wiedersehen{name}, und danke für Ihre Nachricht!",
        "ack": "In Ordnung. Möchten Sie noch etwas wissen?",
        "identity": (
            "Ich bin der automatische Assistent{company}. Ich antworte anhand der Hilfeartikel und kann Sie "
            "jederzeit mit einer Person aus dem Team verbinden."
        ),
        "no_answer": (
            "Leider habe ich dazu in unseren Hilfeartikeln keine Antwort gefunden. "
            "Soll ich Sie mit einer Person aus dem Team verbinden?"
        ),
        "unavailable": (
            "Leider kann ich gerade nicht antworten: Unser automatischer Assistent hat ein technisches Problem. "
            "Soll ich Sie mit einer Person aus dem Team verbinden?"
        ),
        "handover": (
            "Ich gebe dieses Gespräch an eine Person aus unserem Team weiter. "
            "Sie sieht alles, was wir besprochen haben, Sie müssen also nichts wiederholen."
        ),
        "restricted": "Dabei kann ich hier leider nicht helfen. Soll ich Sie mit einer Person aus dem Team verbinden?",
        "refusal": "Das kann ich nicht weitergeben. Kann ich Ihnen sonst irgendwie helfen?",
        "invite": "Gern{name}! Was möchten Sie wissen?",
    },
}


def reply(kind: str, *, language: str = "en", name: str = "", company: str = "") -> str:
    """The fixed reply for a small-talk kind, or for "no_answer", "handover" (to a person),
    "restricted" (a topic the guidance rules forbid), "unavailable" (the model cannot be
    reached) or "refusal", in `language` (else English)."""
    templates = _REPLIES.get((language or "en").split("-")[0].lower(), _REPLIES["en"])
    template = templates.get(kind, _REPLIES["en"][kind])
    name = " ".join(name.split())[:60]
    company = " ".join(company.split())[:80]
    english = templates is _REPLIES["en"]
    return template.format(
        name=f" {name}" if name else "",
        company=(f" of {company}" if english else f" de {company}" if language != "de" else f" von {company}")
        if company
        else "",
        company_possessive=f" {company}'s" if company else " our",
    )


# The replies that end by offering a person; a visitor's "yes" to one is a request for a person
# (apps.agents.escalation.accepts_offer).
OFFERING_KINDS = ("no_answer", "restricted", "unavailable")
_SENTENCE_END = re.compile(r"(?<=[.!:])\s+")


_OFFERS = tuple(
    _SENTENCE_END.split(" ".join(templates[kind].split()))[-1]
    for templates in _REPLIES.values()
    for kind in OFFERING_KINDS
    if kind in templates
)


def offers_person(text: str) -> bool:
    """True when `text` (an AI reply) ends with one of the fixed offers to bring in a person."""
    ending = " ".join(text.split())
    return any(ending.endswith(offer) for offer in _OFFERS)
