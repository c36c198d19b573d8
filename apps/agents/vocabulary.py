"""The notion of a content word that retrieval, follow-up questions and the offline responder
share: English function words (`STOPWORDS`), words that carry little of a question's topic
(`GENERIC`, weighing `GENERIC_WEIGHT`), a light stemmer, and `terms(text)`: the (stem, word)
pairs of a text's content words. Used by followup.py, guidance.py, the runtime and
providers/offline/. Mostly word lists. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Standard English function words, plus the words of asking itself ("how", "can", "need").
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "cannot",
        "could",
        "couldn",
        "did",
        "didn",
        "do",
        "does",
        "doesn",
        "doing",
        "don",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn",
        "has",
        "hasn",
        "have",
        "haven",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "isn",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "more",
        "most",
        "mustn",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "shan",
        "she",
        "should",
        "shouldn",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "wasn",
        "we",
        "were",
        "weren",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won",
        "would",
        "wouldn",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "d",
        "ll",
        "m",
        "re",
        "ve",
        "y",
        "also",
        "im",
        "ive",
        "id",
        "youre",
        "dont",
        "cant",
        "wont",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "doesnt",
        "didnt",
        "hasnt",
        "havent",
        "hadnt",
        "couldnt",
        "wouldnt",
        "shouldnt",
        "u",
        "ur",
        "till",
        "til",
        "stuff",
        "whats",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "please",
        "ok",
        "okay",
        "yes",
        "yeah",
        "yep",
        "sure",
        "may",
        "might",
        "must",
        "shall",
        "us",
        "one",
        "ones",
        "anything",
        "something",
        "everything",
        "nothing",
        "thing",
        "things",
        "way",
        "lot",
    ]
)
# Words that carry little of a question's topic: they count, but weakly.
GENERIC = frozenset(
    [
        "help",
        "need",
        "needs",
        "want",
        "wanted",
        "know",
        "like",
        "would",
        "get",
        "got",
        "go",
        "going",
        "find",
        "tell",
        "ask",
        "asking",
        "question",
        "questions",
        "information",
        "info",
        "regarding",
        "about",
        "interested",
        "looking",
        "look",
        "wondering",
        "wonder",
        "learn",
        "understand",
        "explain",
        "mean",
        "means",
        "said",
        "say",
        "see",
        "use",
        "using",
        "used",
        "make",
        "made",
        "give",
        "given",
        "take",
        "taken",
        "new",
        "good",
        "best",
        "happen",
        "happens",
        "able",
        "possible",
        "sure",
        "kind",
        "type",
        "types",
        "detail",
        "details",
        "something",
        "someone",
        "somebody",
        "people",
        "person",
        "anyone",
        "way",
        "ways",
        "case",
        "much",
        "many",
        "long",
        "time",
        "currently",
        "still",
        "already",
        "well",
        "really",
        "else",
        "also",
        "first",
    ]
)
GENERIC_WEIGHT = 0.3

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper (plural, -ing, -ed, -ly), enough to match "renewing" with
    "renewal"'s neighbour "renew" and "licenses" with "license"; both sides use it."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.replace("'", "")
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly", "ment", "al"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # running -> run, but keep "fill", "pass"
            break
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]  # renew/renewe, license/licens: one form either way
    return w


def words(text: str) -> list[str]:
    """Lower-case word tokens (accents folded, apostrophes kept inside words)."""
    return _WORD.findall(_fold(text or ""))


_CLITIC = re.compile(r"['’](?:s|d|ll|re|ve|m)$")  # "husband's" → "husband", "it'd" → "it"


def terms(text: str) -> list[tuple[str, str]]:
    """(stem, surface word) of every content word of `text`, in order, stopwords dropped
    (possessives and contractions count as the word they attach to)."""
    out = []
    for word in words(text):
        bare = _CLITIC.sub("", word).replace("'", "").replace("’", "")
        if bare in STOPWORDS or word in STOPWORDS or len(bare) < 2 or (bare.isdigit() and len(bare) < 2):
            continue
        out.append((stem(bare), bare))
    return out


def weight(surface: str) -> float:
    return GENERIC_WEIGHT if surface in GENERIC else 1.0
