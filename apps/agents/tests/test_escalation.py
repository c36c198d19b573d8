"""The escalation triggers the runtime checks before answering: the "ask for a human" detector
on a phrase list written for it (asks that must escalate, and look-alikes that must not),
VADER sentiment, too many turns, sensitive keywords and VIP contacts. Pure functions: no
database, no network."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from apps.agents import escalation

# Visitors asking for a person: direct and indirect, typos and chat spellings, bot rejection,
# callbacks, and the basics in Spanish, French, German, Dutch, Portuguese and Italian.
ASKS_FOR_A_HUMAN = [
    "can I speak to someone",
    "Can I speak to someone about my order?",
    "get me a real person",
    "I want to talk to your manager",
    "is there a human I can chat with?",
    "transfer me",
    "connect me with support staff",
    "stop the bot",
    "this bot is useless, give me a person",
    "agent!!",
    "representative",
    "operator",
    "live chat with a human",
    "call me back",
    "quiero hablar con una persona",
    "je veux parler à un humain",
    "ich möchte mit einem Menschen sprechen",
    "ik wil een medewerker spreken",
    "I want to speak to a human",
    "talk to a human",
    "human please",
    "agent please",
    "I need a human",
    "Thanks, but can I talk to a real person?",
    "can i tlak to a humna",
    "speek to a reprsentative plz",
    "REPRESENTATIVE",
    "Human!!!",
    "real person now",
    "live agent",
    "customer service",
    "let me talk to someone",
    "Let me speak with a supervisor.",
    "I'd like to speak with an agent",
    "id like to talk to a person",
    "i wanna talk to a human",
    "gimme a human",
    "put me through to a person",
    "can you transfer me to a live agent",
    "please transfer me to billing",
    "forward me to someone who can help",
    "escalate this please",
    "Please escalate my ticket",
    "I want to escalate this to a manager",
    "Is there anyone I can talk to?",
    "hello? is anybody there?",
    "are there any humans here",
    "Am I talking to a bot? I want a real person",
    "am i chatting with a robot",
    "I don't want to talk to a bot",
    "no more bots, please",
    "I'd rather talk to an actual human being",
    "Why can't I just talk to a person?",
    "why won't you let me speak to someone",
    "I can't get through to a human",
    "How do I reach a real person?",
    "How can I contact your support team?",
    "Can I get a representative on the phone?",
    "could I have a word with a manager",
    "connect me to customer care",
    "I need to speak to a customer service rep",
    "Can a human look at my case please",
    "can a real person help me with this",
    "please have someone call me",
    "Can someone call me back tomorrow?",
    "I'd like a callback",
    "request a call back",
    "call me at 555 0100",
    "give me a call please",
    "ring me back when you can",
    "I wouldn't mind speaking to a person",
    "I don't know how to reach an agent",
    "speak to human",
    "talk to somebody real",
    "I was wondering if I could speak to a human",
    "hablar con un agente por favor",
    "quiero un humano",
    "¿Puedo hablar con un asesor?",
    "Je voudrais parler à quelqu'un",
    "un conseiller s'il vous plaît",
    "Kann ich mit einem Mitarbeiter sprechen?",
    "Ich will mit einer echten Person reden",
    "mag ik een mens spreken",
    "kan ik met een medewerker praten",
    "quero falar com uma pessoa",
    "vorrei parlare con un operatore",
    "rappelez-moi s'il vous plaît",
    "bitte rufen Sie mich zurück",
    "llámame por favor",
    "bel me terug",
    "get me out of this bot and to a person",
    "enough with the bot, I need an agent",
    "I want a human, not a bot",
    "humaaan please",
    "i need to talk to someone in sales",
    "Can you connect me with someone from your team?",
    "switch me to a human agent",
    "hand me over to a person",
    "I'd prefer a human",
    "Is there a live agent available?",
    "are any agents available",
    "Can I chat with a live person?",
    "need human help",
    "transfer me now!!",
    "Agent. Now.",
    "Operator, please",
    "I would like to speak to somebody",
    "talk to a human being",
    "i want to talk with an employee",
    "put me in touch with a human",
    "get in touch with a representative",
    "I need someone to call me",
    "schedule a callback please",
    "Can a person phone me?",
    "Are you a real person?",
    "anyone there?",
    "ur bot is dumb. real human pls",
    "I've asked three times: PERSON",
    "Can I talk to someone in person?",
    "where can I find a real person to talk to",
    "When can I talk to a person?",
    "who can I talk to about a refund?",
    "I demand to speak to a manager",
    "your bot can't help, I need a person",
    "HUMAN AGENT NOW",
    "Yes, I would like to speak directly to an agent about my feedback.",
    "I don't want to wait any longer so just let me talk to someone",
    "I'm not able to get hold of a human",
    "Wait, am I talking to a bot?",
    "is this a real person or a bot",
]

# Look-alikes that must not escalate: agents and people in other senses, refusals, past events,
# questions about how escalation works, and ordinary support questions.
MUST_NOT_ESCALATE = [
    "how do I become a travel agent",
    "what does the insurance agent need",
    "can a person under 18 apply",
    "who is the human resources contact",
    "my user agent string",
    "how many people can share an account",
    "does a real estate agent need a licence",
    "I talked to someone yesterday and they fixed it, thanks",
    "no need to transfer me, you answered it",
    "don't connect me to anyone",
    "is the agent fee refundable",
    "person-to-person payments",
    "How do I reset my password?",
    "What are your opening hours?",
    "Can I get a refund?",
    "Where is my order?",
    "How long does standard shipping take?",
    "Do you ship to Norway?",
    "I want to become an agent for your company",
    "Do your agents speak Spanish?",
    "Can a person speak to the bot in French?",
    "I don't want to talk to anyone, just tell me the price",
    "I don't need a human, you answered it",
    "No thanks, I don't need an agent",
    "Thanks, I spoke to an agent last week and it's sorted",
    "I finally managed to talk to someone, thanks",
    "The agent I spoke with was very helpful",
    "How do I add a human agent to my team?",
    "Can the bot hand over to a human automatically?",
    "how do I configure the AI agent",
    "How do I turn off the bot on weekends?",
    "How do I stop the bot from answering at night?",
    "I don't want the bot to answer in German",
    "how do I set the webhook callback URL",
    "what is the callback function in the API",
    "you can call me Sam",
    "Please call me Alex from now on.",
    "don't call me, just email me",
    "Why did someone call me?",
    "Who called me from this number?",
    "Yesterday someone called me about my order",
    "Can I call you back later?",
    "Do I need to talk to someone to cancel, or can I do it online?",
    "Do I need an agent to sell my house?",
    "Is there a per person limit on tickets?",
    "Can I pay in person at the store?",
    "Is there a fee per person?",
    "What does the AND operator do in search?",
    "Which mobile operator works with your SIM?",
    "My manager wants to know the price",
    "Can I add my manager as an admin?",
    "I need my manager's approval first",
    "Let me talk to my manager and get back to you",
    "I need to talk to my manager before I buy",
    "human error caused a double charge, please refund",
    "Is this product safe for human consumption?",
    "Are the photos of real people?",
    "Someone stole my card, how do I block it?",
    "My account was accessed by someone else",
    "I want to send money to someone abroad",
    "How do I transfer money to another account?",
    "Can I transfer my subscription to a new email?",
    "Can you transfer me $50 back?",
    "how do I connect my printer",
    "How do I add live chat to my website?",
    "Does the live chat widget work on mobile?",
    "What's the difference between an agent seat and a viewer?",
    "How much is an extra agent seat?",
    "Can I change the person on the booking?",
    "Is the representative sample size big enough?",
    "how do I escalate a ticket in the dashboard",
    "How does escalation to a human work?",
    "What happens when a visitor asks for a person?",
    "Can my team members see each other's chats?",
    "Do you have a support team in Europe?",
    "Is customer service open on Sundays?",
    "What is the customer service email address?",
    "Who is the account manager for enterprise plans?",
    "I never asked to speak to a human",
    "no, I'm fine, no need for an agent",
    "I already talked to your staff yesterday",
    "Is the human body mostly water?",
    "how many persons can attend",
    "Can one person have two accounts?",
    "Does the price include one person or two?",
    "Can another person pick up my parcel?",
    "What do agents earn?",
    "The bot answered everything, thank you!",
    "great, thanks, that's all",
    "Does a real person read the emails I send?",
    "My travel agent booked the wrong date",
    "We need an agent license for our second support person",
    "I want to chat with my friends using the app",
    "Can I talk to the bot by voice?",
    "Can I speak? My microphone is not working",
    "what is a human-readable ID",
    "how to connect agent api",
    "Is the chat agent available in Spanish?",
    "Can I assign a conversation to another agent?",
    "How many agents can I add on the Pro plan?",
    "Does the agent see my previous orders?",
    "Can the agent book appointments?",
    "How do I invite a colleague to my workspace?",
    "I want men's shoes in size 44",
    "Can I get an invoice for my order?",
    "How do I cancel my subscription?",
    "Is there a student discount?",
    "What payment methods do you accept?",
    "My parcel arrived damaged",
    "How do I delete my account?",
    "I'm not a bot, I just type fast",
    "je ne veux parler à personne",
    "ich möchte nicht mit einem Menschen sprechen",
    "no quiero hablar con una persona",
    "hoe word ik makelaar",
    "¿Cuánto cuesta el envío a Madrid?",
    "Où est ma commande ?",
    "what happens after I talk to an agent",
    "Who did I talk to last time?",
    "No, I don't need to speak to an agent.",
    "Can someone else register the vehicle?",
    "I'd like to know about agent orange exposure",
    "How can an agent take over a conversation?",
    "I spoke with your representative and she solved it",
    "Can I give someone access to my account?",
    "Are you a real person or a robot? Anyway, how do I renew my licence?",
    "Is this a real person answering? My order number is 4411.",
]


def _scores() -> tuple[float, float, list[str], list[str]]:
    missed = [t for t in ASKS_FOR_A_HUMAN if not escalation.wants_human(t)]
    false_alarms = [t for t in MUST_NOT_ESCALATE if escalation.wants_human(t)]
    true_positives = len(ASKS_FOR_A_HUMAN) - len(missed)
    precision = true_positives / max(1, true_positives + len(false_alarms))
    recall = true_positives / len(ASKS_FOR_A_HUMAN)
    return precision, recall, missed, false_alarms


def test_the_phrase_lists_are_large_and_distinct() -> None:
    assert len(ASKS_FOR_A_HUMAN) >= 80 and len(MUST_NOT_ESCALATE) >= 80
    assert len(set(ASKS_FOR_A_HUMAN)) == len(ASKS_FOR_A_HUMAN)
    assert len(set(MUST_NOT_ESCALATE)) == len(MUST_NOT_ESCALATE)
    assert not set(ASKS_FOR_A_HUMAN) & set(MUST_NOT_ESCALATE)


def test_every_ask_for_a_human_escalates_and_no_look_alike_does() -> None:
    precision, recall, missed, false_alarms = _scores()
    assert (missed, false_alarms) == ([], [])
    assert (precision, recall) == (1.0, 1.0)


@pytest.mark.parametrize("text", ASKS_FOR_A_HUMAN)
def test_asks_for_a_human(text: str) -> None:
    assert escalation.wants_human(text), text


@pytest.mark.parametrize("text", MUST_NOT_ESCALATE)
def test_look_alikes_do_not_escalate(text: str) -> None:
    assert not escalation.wants_human(text), escalation.human_request(text)


def test_each_decision_names_its_rule() -> None:
    assert escalation.human_request("get me a real person") == "request for a person: 'get me a real person'"
    assert escalation.human_request("Agent!!") == "a person, alone: 'agent'"
    assert escalation.human_request("Please call me back tomorrow").startswith("callback request: ")
    assert escalation.human_request("stop the bot").startswith("rejects the bot: ")
    assert escalation.human_request("how do I become a travel agent") is None
    assert escalation.human_request("") is None and not escalation.wants_human(None)  # type: ignore[arg-type]


def test_the_ask_is_found_in_any_clause_and_negation_stays_in_its_own() -> None:
    assert escalation.wants_human("Thanks for the answer about shipping. Now I'd like to talk to a person.")
    assert escalation.wants_human("I don't need the tracking link, I need a human")
    assert not escalation.wants_human("I don't need a human, the tracking link was enough")
    # A refusal far before the ask does not cancel it.
    assert escalation.wants_human("I don't want to wait any longer so just let me talk to someone")


def test_long_and_hostile_input_stays_fast() -> None:
    import time

    texts = [*ASKS_FOR_A_HUMAN, *MUST_NOT_ESCALATE]
    hostile = ["talk " + "to " * 600 + "x", "persona " * 600, "get " + "to " * 300 + "a " * 300, "é" * 5000]
    started = time.perf_counter()
    for text in [*texts, *hostile]:
        escalation.wants_human(text)
    assert time.perf_counter() - started < 2.0  # about 0.1 ms a message; generous for slow CI


# --- the other triggers ------------------------------------------------------------------------


def test_sentiment_is_vaders_compound_score() -> None:
    negative = "This is absolutely terrible. I hate this service and I'm furious!"
    neutral = "My parcel was sent on Tuesday to Berlin."
    positive = "Thank you so much, this is great and really helpful!"
    assert escalation.sentiment(negative) <= -0.8
    assert escalation.sentiment(neutral) == 0.0
    assert escalation.sentiment(positive) >= 0.8
    assert escalation.sentiment("") == 0.0

    policy = {"negative_sentiment": {"enabled": True, "threshold": -0.5}}
    assert escalation.negative_sentiment(policy, negative) == escalation.sentiment(negative)
    assert escalation.negative_sentiment(policy, neutral) is None
    assert escalation.negative_sentiment(policy, positive) is None
    mild = "Unfortunately the delivery was late."
    assert -0.5 < escalation.sentiment(mild) < 0
    assert escalation.negative_sentiment(policy, mild) is None
    assert escalation.negative_sentiment({"negative_sentiment": True}, negative) is not None  # default -0.5
    assert escalation.negative_sentiment({"negative_sentiment": {"enabled": False}}, negative) is None
    assert escalation.negative_sentiment({}, negative) is None
    strict = {"negative_sentiment": {"enabled": True, "threshold": -0.95}}
    assert escalation.negative_sentiment(strict, "I'm a little disappointed") is None


def test_too_many_turns() -> None:
    policy = {"max_turns": {"enabled": True, "threshold": 3}}
    assert [escalation.too_many_turns(policy, n) for n in (1, 3, 4, 10)] == [None, None, 4, 10]
    assert escalation.too_many_turns({"max_turns": True}, 12) is None  # default limit 12
    assert escalation.too_many_turns({"max_turns": True}, 13) == 13
    assert escalation.too_many_turns({"max_turns": {"enabled": False, "threshold": 1}}, 50) is None
    assert escalation.too_many_turns({}, 50) is None


def test_keyword_hit_finds_whole_words_case_insensitively() -> None:
    policy = {"keywords": {"enabled": True, "words": ["refund", "legal action", "GDPR", "  "]}}
    assert escalation.keyword_hit(policy, "I will take LEGAL ACTION over this") == "legal action"
    assert escalation.keyword_hit(policy, "This is a gdpr request") == "gdpr"
    assert escalation.keyword_hit(policy, "Has it been refunded?") is None  # not the whole word
    assert escalation.keyword_hit(policy, "Where is my refund?") == "refund"
    assert escalation.keyword_hit(policy, "Where is my parcel?") is None
    assert escalation.keyword_hit({"keywords": {"enabled": False, "words": ["refund"]}}, "refund") is None
    assert escalation.keyword_hit({"keywords": {"enabled": True}}, "refund") is None
    assert escalation.keyword_hit({}, "refund") is None


def test_is_vip_from_the_contact_or_the_conversation() -> None:
    policy = {"vip": True}
    contact = SimpleNamespace(attributes={"vip": "yes"})
    assert escalation.is_vip(policy, contact, {})
    assert escalation.is_vip(policy, None, {"vip": True})
    assert escalation.is_vip(policy, SimpleNamespace(attributes={"vip": 1}), {})
    assert not escalation.is_vip(policy, SimpleNamespace(attributes={"vip": "no"}), {"vip": "false"})
    assert not escalation.is_vip(policy, SimpleNamespace(attributes=None), {})
    assert not escalation.is_vip({"vip": {"enabled": False}}, contact, {"vip": True})
    assert not escalation.is_vip({}, contact, {"vip": True})


def test_policy_values_and_abstention_limit() -> None:
    assert escalation.policy_value({"vip": True}, "vip") is True
    assert escalation.policy_value({"vip": True}, "vip", "threshold", 5) == 5
    assert escalation.policy_value({"keywords": {"words": ["x"]}}, "keywords", "words") == ["x"]
    assert escalation.policy_value({}, "vip") is None
    assert escalation.abstention_limit({"abstentions": {"enabled": True, "threshold": 3}}) == 3
    assert escalation.abstention_limit({"abstentions": True}) == 2
    assert escalation.abstention_limit({"abstentions": {"enabled": True, "threshold": 0}}) == 2
    assert escalation.abstention_limit({}) is None


# --- a "yes" to the AI's offer of a person ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["no_answer", "restricted", "unavailable"])
@pytest.mark.parametrize("language", ["en", "es", "fr", "de"])
@pytest.mark.parametrize(
    "answer", ["yes", "Yes please!", "ok, thanks", "sure", "oui merci", "Ja bitte", "sí, por favor"]
)
def test_a_yes_to_an_offer_of_a_person_is_a_request_for_one(kind: str, language: str, answer: str) -> None:
    from apps.agents import smalltalk

    offer = smalltalk.reply(kind, language=language, company="Acme")
    assert escalation.accepts_offer(offer, answer)


@pytest.mark.parametrize(
    "previous, answer",
    [
        ("Standard shipping takes 3 to 5 business days [1].", "yes"),  # no offer was made
        ("Would you like me to connect you with a member of the team? Or ask me anything.", "yes"),
        ("I'm sorry, I couldn't find an answer. Would you like me to connect you with a member of the team?", "no"),
        ("Would you like me to connect you with a member of the team?", "yes, and how long does shipping take?"),
        ("", "yes"),
    ],
)
def test_anything_else_is_not_taken_for_a_yes_to_an_offer(previous: str, answer: str) -> None:
    assert not escalation.accepts_offer(previous, answer)
