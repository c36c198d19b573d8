"""Dashboard pages for routing: teams (teams.py), intents (intents.py), routing rules
(rules.py), the human queue, SLA events, presence and manual assignment (queue.py); their
forms in forms/, one module per page.

Everyone in the workspace reads; agents accept from the queue, assign and set their presence;
owners and admins change the configuration. Writes go through apps/routing/services.py and
apps/conversations/services.py, which check the roles again, audit and publish the staff
events the pages listen to (static/js/presence.js). See docs/subsystems/routing.md.
"""

from .intents import intent_delete, intent_edit, intent_list
from .queue import conversation_assign, presence_set, queue, queue_accept, sla
from .rules import rule_delete, rule_edit, rule_list, rule_move
from .teams import team_delete, team_detail, team_new, teams

__all__ = [
    "conversation_assign",
    "intent_delete",
    "intent_edit",
    "intent_list",
    "presence_set",
    "queue",
    "queue_accept",
    "rule_delete",
    "rule_edit",
    "rule_list",
    "rule_move",
    "sla",
    "team_delete",
    "team_detail",
    "team_new",
    "teams",
]
