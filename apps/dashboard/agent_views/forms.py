"""Forms of the agent pages: every agent setting (the escalation policy as flat fields) and
provider credentials."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from apps.agents.models import TOOL_NAMES, Agent, default_escalation_policy
from apps.knowledge.models import KnowledgeBase
from apps.knowledge.selectors import knowledge_base_list

VARIABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
VARIABLES_HELP = (
    "Write {{ company_name }}, {{ business_hours }}, {{ contact_name }}, {{ agent_name }} or {{ language }} "
    "in the instructions; each is replaced by its value when the agent answers. Set your own under Variables."
)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").replace("\r\n", "\n").split("\n") if line.strip()]


def parse_variables(text: str) -> dict[str, str]:
    """`name=value` lines → a dict; raises ValidationError naming the first bad line."""
    variables: dict[str, str] = {}
    for number, line in enumerate(_lines(text), start=1):
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not VARIABLE_NAME.match(name):
            raise forms.ValidationError(
                f"Line {number}: write name=value, the name in lower_case letters, digits and _ (at most 40)."
            )
        if len(value.strip()) > 500:
            raise forms.ValidationError(f"Line {number}: a value has at most 500 characters.")
        variables[name] = value.strip()
    if len(variables) > 30:
        raise forms.ValidationError("At most 30 variables.")
    return variables


class AgentCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    instructions = forms.CharField(
        required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 8}), help_text=VARIABLES_HELP
    )
    knowledge_bases = forms.ModelMultipleChoiceField(
        queryset=KnowledgeBase.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["knowledge_bases"].queryset = knowledge_base_list()  # type: ignore[attr-defined]


class AgentForm(AgentCreateForm):
    """Every setting of an agent; the escalation policy as flat fields (`esc_*`)."""

    greeting = forms.CharField(max_length=500, required=False, help_text="The first message visitors see.")
    language = forms.RegexField(
        r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", max_length=12, help_text="A language code: en, de, pt-BR."
    )
    variables = forms.CharField(
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line: name=value, e.g. business_hours=Mon–Fri 9–17.",
    )
    guidance_rules = forms.CharField(
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One rule per line (at most 30), e.g. Never promise delivery dates.",
    )
    provider = forms.ChoiceField(choices=Agent.Provider.choices)
    model = forms.CharField(max_length=100, required=False, help_text="Empty: the provider's default model.")
    temperature = forms.FloatField(min_value=0.0, max_value=2.0)
    max_tokens = forms.IntegerField(min_value=16, max_value=8192, label="Max tokens per answer")
    tools = forms.MultipleChoiceField(
        choices=[(t, t) for t in TOOL_NAMES], required=False, widget=forms.CheckboxSelectMultiple
    )
    min_similarity = forms.FloatField(
        min_value=0.0, max_value=1.0, help_text="Below this best similarity the agent abstains instead of guessing."
    )
    top_k = forms.IntegerField(min_value=1, max_value=20, label="Passages retrieved (top k)")
    is_active = forms.BooleanField(required=False, label="Active")
    esc_on_request = forms.BooleanField(required=False, label="Hand over when the visitor asks for a human")
    esc_abstentions = forms.BooleanField(required=False, label="Hand over after repeated abstentions")
    esc_abstentions_threshold = forms.IntegerField(min_value=1, max_value=20, label="Abstentions in a row")
    esc_max_turns = forms.BooleanField(required=False, label="Hand over after many turns")
    esc_max_turns_threshold = forms.IntegerField(min_value=1, max_value=500, label="Turns")
    esc_negative_sentiment = forms.BooleanField(required=False, label="Hand over on negative sentiment")
    esc_negative_sentiment_threshold = forms.FloatField(
        min_value=-1.0, max_value=0.0, label="Sentiment at or below", help_text="-1 (very negative) to 0."
    )
    esc_vip = forms.BooleanField(required=False, label="Hand VIP contacts to a human")
    esc_keywords = forms.BooleanField(required=False, label="Hand over on sensitive keywords")
    esc_keywords_words = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), label="Keywords, one per line"
    )

    GROUPS = (
        ("Prompt", ("name", "instructions", "greeting", "language", "variables", "guidance_rules", "is_active")),
        ("Knowledge", ("knowledge_bases", "min_similarity", "top_k")),
        ("Model", ("provider", "model", "temperature", "max_tokens", "tools")),
        (
            "Escalation",
            (
                "esc_on_request",
                "esc_abstentions",
                "esc_abstentions_threshold",
                "esc_max_turns",
                "esc_max_turns_threshold",
                "esc_negative_sentiment",
                "esc_negative_sentiment_threshold",
                "esc_vip",
                "esc_keywords",
                "esc_keywords_words",
            ),
        ),
    )

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(title, [self[name] for name in names]) for title, names in self.GROUPS]

    def clean_variables(self) -> dict[str, str]:
        return parse_variables(self.cleaned_data["variables"])

    def clean_guidance_rules(self) -> list[str]:
        rules = _lines(self.cleaned_data["guidance_rules"])
        if len(rules) > 30 or any(len(rule) > 500 for rule in rules):
            raise forms.ValidationError("At most 30 rules of at most 500 characters each.")
        return rules

    def clean_esc_keywords_words(self) -> list[str]:
        words = list(dict.fromkeys(w.lower() for w in _lines(self.cleaned_data["esc_keywords_words"])))
        if len(words) > 100 or any(len(w) > 60 for w in words):
            raise forms.ValidationError("At most 100 keywords of at most 60 characters each.")
        return words

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("esc_keywords") and not data.get("esc_keywords_words"):
            self.add_error("esc_keywords_words", "Add at least one keyword, or turn keyword hand-over off.")
        return data

    @classmethod
    def initial_for(cls, agent: Agent) -> dict[str, Any]:
        policy = {**default_escalation_policy(), **(agent.escalation_policy or {})}

        def entry(key: str) -> dict[str, Any]:
            value = policy.get(key)
            return value if isinstance(value, dict) else {"enabled": bool(value)}

        return {
            **{f: getattr(agent, f) for f in ("name", "instructions", "greeting", "language", "provider", "model")},
            **{f: getattr(agent, f) for f in ("temperature", "max_tokens", "min_similarity", "top_k", "is_active")},
            "knowledge_bases": list(agent.knowledge_bases.all()),
            "variables": "\n".join(f"{k}={v}" for k, v in (agent.variables or {}).items()),
            "guidance_rules": "\n".join(str(r) for r in agent.guidance_rules or []),
            "tools": list(agent.tools or []),
            "esc_on_request": bool(policy.get("on_request", True)),
            "esc_abstentions": entry("abstentions").get("enabled", False),
            "esc_abstentions_threshold": entry("abstentions").get("threshold", 2),
            "esc_max_turns": entry("max_turns").get("enabled", False),
            "esc_max_turns_threshold": entry("max_turns").get("threshold", 12),
            "esc_negative_sentiment": entry("negative_sentiment").get("enabled", False),
            "esc_negative_sentiment_threshold": entry("negative_sentiment").get("threshold", -0.5),
            "esc_vip": entry("vip").get("enabled", False),
            "esc_keywords": entry("keywords").get("enabled", False),
            "esc_keywords_words": "\n".join(str(w) for w in entry("keywords").get("words", [])),
        }

    def service_fields(self, agent: Agent) -> dict[str, Any]:
        """The cleaned data as `agent_update` keywords; policy keys this form does not know
        are kept."""
        d = self.cleaned_data
        policy = dict(agent.escalation_policy or {})
        policy.update(
            on_request=d["esc_on_request"],
            abstentions={"enabled": d["esc_abstentions"], "threshold": d["esc_abstentions_threshold"]},
            max_turns={"enabled": d["esc_max_turns"], "threshold": d["esc_max_turns_threshold"]},
            negative_sentiment={
                "enabled": d["esc_negative_sentiment"],
                "threshold": d["esc_negative_sentiment_threshold"],
            },
            vip={"enabled": d["esc_vip"]},
            keywords={"enabled": d["esc_keywords"], "words": d["esc_keywords_words"]},
        )
        plain = ("name", "instructions", "greeting", "language", "variables", "guidance_rules", "provider", "model")
        numbers = ("temperature", "max_tokens", "tools", "min_similarity", "top_k", "is_active")
        return {
            **{f: d[f] for f in (*plain, *numbers)},
            "knowledge_bases": [kb.pk for kb in d["knowledge_bases"]],
            "escalation_policy": policy,
        }


class CredentialForm(forms.Form):
    api_key = forms.CharField(
        max_length=500,
        required=False,
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted, never shown again. Leave empty to keep the stored key "
        "(changing the base URL needs the key entered again).",
    )
    base_url = forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        label="Base URL",
        help_text="For an OpenAI-compatible server (e.g. https://llm.example.com/v1). Empty: api.openai.com. "
        "It must be reachable on the internet; a server on a private network works once the operator "
        "allows it (OUTBOUND_ALLOWLIST).",
    )
    organization = forms.CharField(max_length=100, required=False)
