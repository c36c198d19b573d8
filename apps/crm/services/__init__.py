"""Writes to the CRM: contacts, their memory, leads. Every change is audited.

Contact memory is a list of facts (see `Contact`). `contact_remember` is what the AI calls
with facts it extracted from a conversation; staff edit with `contact_memory_set` and erase
with `contact_memory_erase` (one key, or everything). Identity fields (name, email, phone,
company) are mirrored on the contact's columns so lists and search can use them.

A fact's `source` says who vouches for it: `staff`, `verified` (a signed identity, an
authenticated integrator, or staff verifying the contact) or `conversation` (what a visitor
said). Staff and verified facts are never overwritten from a conversation, and only they
let a trusted path find a contact by email or phone. Nothing a visitor says ever selects an
existing contact: `lead_capture` files under the visitor's own contact or a new unverified
one; `contact_merge` is how staff fold such a contact into a known one
(docs/adr/0011-visitor-identity.md).

One module per concern; this package is the surface other apps import: `contacts` (create,
update, verify, delete, and leads), `memory` (facts: remember, set, erase, read), `identity`
(trusted lookups, signed identities, merging), and `common` (the checks and events they share).
"""

from .contacts import contact_create, contact_delete, contact_update, lead_capture
from .identity import contact_by_trusted, contact_for_signed_identity, contact_merge
from .memory import (
    COLUMN_MAX,
    IDENTITY_FIELDS,
    MAX_FACTS,
    MAX_VALUE,
    MEMORY_KEYS,
    MULTI_KEYS,
    SINGLE_KEYS,
    TRUSTED_SOURCES,
    contact_facts,
    contact_memory_erase,
    contact_memory_set,
    contact_remember,
)

__all__ = [
    "COLUMN_MAX",
    "IDENTITY_FIELDS",
    "MAX_FACTS",
    "MAX_VALUE",
    "MEMORY_KEYS",
    "MULTI_KEYS",
    "SINGLE_KEYS",
    "TRUSTED_SOURCES",
    "contact_by_trusted",
    "contact_create",
    "contact_delete",
    "contact_facts",
    "contact_for_signed_identity",
    "contact_memory_erase",
    "contact_memory_set",
    "contact_merge",
    "contact_remember",
    "contact_update",
    "lead_capture",
]
