"""Reference text is untrusted: what a quoted sentence must not be (the offline responder,
see __init__.py). A help article rarely talks to the assistant or carries markup; a
sentence that does is never quoted."""

from __future__ import annotations

import re

_ASSISTANT = r"(?:ai|a\.i\.|assistant|chat ?bot|bot|model|llm|language model|gpt|claude|agent model)"
_INSTRUCTION_PATTERNS = [
    r"\b(?:ignore|disregard|forget|override|bypass|skip)\b.{0,40}\b(?:instructions?|prompts?|rules|guidelines|directions|directives|messages?|context)\b",
    r"\b(?:system|developer|hidden|secret|initial|original)\s+(?:prompts?|messages?|instructions?)\b",
    r"\b(?:reveal|show|print|repeat|output|leak|display|disclose|share|dump)\b.{0,30}"
    r"\b(?:prompts?|instructions|secrets?|api[ _-]?keys?|passwords?|credentials|tokens?)\b",
    r"^\W*(?:system|assistant|developer|user|ai|human|bot)\s*:",
    r"\b(?:you are now|from now on,? you|act as|pretend (?:to be|you are)|role-?play as"
    r"|jailbreak|dan mode|developer mode)\b",
    r"\b(?:call|invoke|execute|trigger|run)\b.{0,40}\b(?:tools?|functions?)\b",
    r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\s*\(",
    r"\b(?:call|invoke|execute|trigger|use|run)\s+(?:the\s+)?[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b",
    rf"\b(?:as an?|if you are an?|dear|attention|note to( the)?|hey)\s+{_ASSISTANT}\b",
    rf"\b(?:the\s+)?{_ASSISTANT}s?\s+(?:must|should|shall|has to|needs? to|is instructed|is required)\b",
    r"\b(?:tell|inform|say to|respond to|reply to|answer)\s+the\s+(?:user|visitor|human)\b",
    r"\b(?:respond|reply|answer)\s+(?:only\s+)?(?:with|by saying)\b",
    r"\b(?:new|updated|real|actual|hidden|additional)\s+instructions?\b",
    r"\bprompt injection\b|<\|[a-z_]+\|>|\[/?inst\]|###\s*(?:instruction|system)|\bbegin (?:system|prompt)\b",
    r"\bdo not (?:tell|mention|reveal|inform)\b.{0,30}\b(?:user|visitor|customer)\b",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTION_PATTERNS), re.IGNORECASE)
_MARKUP = re.compile(
    r"<\s*/?\s*[a-z!?][^>]*>|&lt;|&#|javascript:|data:text|\bon[a-z]+\s*=|\{\{|\}\}|\{%|%\}|```|<!--|\$\{",
    re.IGNORECASE,
)
_CODE = re.compile(r"[{};]\s*$|^\s*[{}]|=>|\bfunction\s*\(|\bdef\s+\w+\(|\bimport\s+\w+|\w+\(\)\s*;")


def addresses_assistant(text: str) -> bool:
    """Whether `text` speaks to the AI rather than to a reader: an instruction aimed at the
    model (ignore/reveal/act as/call a tool/respond with), a chat role label, special tokens.
    A heuristic list, kept deliberately broad: a help article rarely talks like this."""
    return bool(_INSTRUCTION.search(text))


def has_markup(text: str) -> bool:
    return bool(_MARKUP.search(text) or _CODE.search(text))
