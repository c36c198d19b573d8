"""The demo workspace's content: a small help centre for the fictional Acme Inc., an AI agent
that answers from it, and a web-chat inbox whose widget runs on the dashboard's demo page.
Created once by `seed_demo` (idempotent: found by name, never duplicated)."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import tenant_context

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.agents.models import Agent
from apps.agents.services import agent_create
from apps.conversations.models import Inbox
from apps.conversations.services import inbox_create
from apps.knowledge import services as knowledge
from apps.knowledge.models import KnowledgeBase

ARTICLES = {
    "Shipping and delivery": """# Shipping and delivery

Acme ships to every country in the European Union, the United Kingdom, Norway and Switzerland.
We do not ship outside Europe yet, so not to the United States, Canada or Australia.

## Delivery times
Standard shipping takes 3 to 5 business days. Express shipping arrives the next business day
when you order before 2 pm (CET); it costs 9.90 EUR. Standard shipping is free for orders over
50 EUR and costs 4.90 EUR below that.

## Tracking
You receive a tracking link by email as soon as your parcel leaves our warehouse in Rotterdam.
If the link shows no movement for 3 business days, contact us and we open an investigation
with the carrier.
""",
    "Returns and refunds": """# Returns and refunds

You can return any unused item within 30 days of delivery for a full refund.
Changed your mind or don't like it? Send it back unused within those 30 days, no reason needed.

## How to return
Open your order in your Acme account, choose "Return items" and print the prepaid return label.
Drop the parcel at any post office or parcel point. Returns are free within the EU.

## Refunds
How long does a refund take? We refund to your original payment method within 5 business days of receiving the parcel.
Shipping costs are refunded when the whole order is returned.
""",
    "Your account and password": """# Your account and password

## Resetting your password
To reset your password, open the login page and click "Forgot password". We email you a reset
link that stays valid for one hour. If the email does not arrive, check your spam folder.

## Two-factor authentication
You can turn on two-factor authentication under Account, Security. We support authenticator
apps; SMS codes are not offered.

## Deleting your account
Write to privacy@acme.example to delete your account. We erase your data within 30 days.
""",
    "Warranty": """# Warranty

Every Acme product has a two-year warranty covering manufacturing defects. The warranty does
not cover normal wear, accidents or repairs by third parties.

## Broken or damaged on arrival
Your order arrived broken or damaged? Do not send it back first.
Open the order in your account, choose "Report a problem" and add a photo.
We send a replacement or refund you.

To make a warranty claim, open the order in your account and choose "Report a problem", with a photo of
the defect. We repair or replace the product, or refund it when neither is possible.
""",
    "Payment methods": """# Payment methods

We accept Visa, Mastercard, American Express, PayPal, iDEAL and bank transfer. Business
customers can pay by invoice within 30 days after a credit check. Prices include VAT.
""",
}

KB_NAME = "Acme Help Centre"
AGENT_NAME = "Acme Assistant"
INBOX_NAME = "Acme website chat"


def seed_demo_content(tenant: Any, owner: Any, origin: str) -> Any:
    """Make sure the demo knowledge base, agent and web-chat inbox exist; returns the inbox.
    `origin` (scheme://host:port of the workspace) is allowed to embed the widget."""

    actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
    with tenant_context(tenant):
        kb = KnowledgeBase.objects.filter(name=KB_NAME).first()
        if kb is None:
            kb = knowledge.knowledge_base_create(editor=actor, name=KB_NAME, description="Help articles of Acme Inc.")
            for title, text in ARTICLES.items():
                source = knowledge.source_add_text(editor=actor, kb=kb, title=title, text=text)
                source.refresh_from_db()
                # Ingested here, not by the worker: the demo answers as soon as `make run` is up.
                knowledge.ingest_source(source_id=source.pk, run=source.run)
        agent = Agent.objects.filter(name=AGENT_NAME).first()
        if agent is None:
            agent = agent_create(
                editor=actor,
                name=AGENT_NAME,
                instructions="You help {{ company_name }}'s customers with orders, shipping, returns, "
                "accounts and warranty questions.",
                greeting="Hi! I'm the Acme Assistant. Ask me about shipping, returns, your account or warranty.",
                variables={"company_name": "Acme", "business_hours": "Monday to Friday, 9:00-17:00 CET"},
                knowledge_bases=[kb.pk],
            )
        inbox = Inbox.objects.filter(name=INBOX_NAME).first()
        if inbox is None:
            inbox = inbox_create(
                actor=actor,
                name=INBOX_NAME,
                agent_id=agent.pk,
                title="Acme support",
                greeting="Hi! Ask me anything about your order.",
                allowed_origins=[origin],
            )
        return inbox
