"""The intent forms (routing pages): an intent's examples and keywords, and a test message."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.routing.models import Intent

from . import lines

MAX_EXAMPLES = 200
MAX_KEYWORDS = 100


class IntentForm(forms.Form):
    name = forms.CharField(max_length=80)
    examples = forms.CharField(
        required=False,
        max_length=MAX_EXAMPLES * 500,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Messages that mean this, one per line. Matched by meaning, not exact words.",
    )
    keywords = forms.CharField(
        required=False,
        max_length=MAX_KEYWORDS * 80,
        help_text="Words or phrases, separated by commas; any of them counts as a match (confidence 0.9).",
    )
    threshold = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        initial=0.55,
        help_text="Least similarity (0 to 1) for a match. Higher is stricter.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )

    def __init__(self, *args: Any, intent: Intent | None = None, **kwargs: Any) -> None:
        self.intent = intent
        if intent is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": intent.name,
                "examples": "\n".join(str(e) for e in intent.examples),
                "keywords": ", ".join(str(k) for k in intent.keywords),
                "threshold": intent.threshold,
            }
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("An intent needs a name.")
        clash = Intent.objects.filter(name__iexact=name)
        if self.intent is not None:
            clash = clash.exclude(pk=self.intent.pk)
        if clash.exists():
            raise forms.ValidationError("Another intent has this name.")
        return name

    def clean_examples(self) -> list[str]:
        examples = list(dict.fromkeys(lines(self.cleaned_data.get("examples", ""))))
        if len(examples) > MAX_EXAMPLES:
            raise forms.ValidationError(f"At most {MAX_EXAMPLES} examples.")
        if any(len(e) > 500 for e in examples):
            raise forms.ValidationError("An example is at most 500 characters.")
        return examples

    def clean_keywords(self) -> list[str]:
        raw = self.cleaned_data.get("keywords", "")
        keywords = list(dict.fromkeys(" ".join(k.split()) for k in raw.split(",") if k.strip()))
        if len(keywords) > MAX_KEYWORDS:
            raise forms.ValidationError(f"At most {MAX_KEYWORDS} keywords.")
        if any(len(k) > 80 for k in keywords):
            raise forms.ValidationError("A keyword is at most 80 characters.")
        return keywords

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors and not data.get("examples") and not data.get("keywords"):
            raise forms.ValidationError("Give at least one example or keyword: without them nothing matches.")
        return data


class IntentTestForm(forms.Form):
    text = forms.CharField(max_length=2000, label="Test a message", widget=forms.Textarea(attrs={"rows": 2}))
