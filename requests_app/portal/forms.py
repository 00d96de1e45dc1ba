"""Portal forms: validation and user-facing messages only (mutations live in services)."""
from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from ..api.validation import json_loads_strict
from ..models import Jurisdiction, LegalGround, TargetModel

UPLOAD_EXTENSIONS = (".txt", ".md", ".csv", ".json", ".jsonl")


def upload_max_bytes() -> int:
    """The limit for an attached file: the service's evidence limit (``EVIDENCE_MAX_BYTES``)."""
    return int(getattr(settings, "EVIDENCE_MAX_BYTES", 256 * 1024))


class SummaryMixin:
    """``form.error_summary``: every error with the id of the input to jump to (error summary)."""

    def error_summary(self) -> list[dict]:
        out = []
        for name, errors in self.errors.items():
            if name == forms.forms.NON_FIELD_ERRORS:
                out += [{"anchor": "", "label": "", "message": e} for e in errors]
                continue
            field = self[name]
            anchor = field.auto_id
            if isinstance(field.field.widget, (forms.RadioSelect, forms.CheckboxSelectMultiple)):
                anchor = f"{anchor}_0"
            out += [{"anchor": anchor, "label": field.label, "message": e} for e in errors]
        return out


def upload_too_large_message(size: int) -> str:
    return _("The file is %(size)s; files may be at most %(limit)s. Upload a shorter file with only the "
             "relevant part.") % {"size": filesizeformat(size), "limit": filesizeformat(upload_max_bytes())}


def _check_upload_size(upload) -> None:
    if upload.size > upload_max_bytes():
        raise forms.ValidationError(upload_too_large_message(upload.size), code="file_too_large")


class SignInForm(SummaryMixin, forms.Form):
    email = forms.EmailField(
        label=_("Your e-mail address"),
        help_text=_("We send you a link that signs you in. No password is needed."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    next = forms.CharField(required=False, widget=forms.HiddenInput)


JURISDICTION_CHOICES = [
    (Jurisdiction.GDPR, _("I live in the European Union, the EEA or the UK (GDPR)")),
    (Jurisdiction.CCPA, _("I live in California (CCPA)")),
    (Jurisdiction.OTHER, _("Somewhere else")),
]

LEGAL_GROUND_CHOICES = [
    (LegalGround.A, _("My data is no longer needed for the purpose it was collected for.")),
    (LegalGround.B, _("I withdraw the consent I gave to use my data.")),
    (LegalGround.C, _("I object to the use of my data, and there is no overriding reason to keep using it.")),
    (LegalGround.D, _("My data was used unlawfully.")),
    (LegalGround.E, _("A law requires that my data is erased.")),
    (LegalGround.F, _("My data was collected when I was a child, through an online service.")),
    (LegalGround.NONE, _("I am not sure, or I prefer not to say.")),
]

SCOPE_ALL = "all"
SCOPE_SPECIFIC = "specific"


class RemovalRequestForm(SummaryMixin, forms.Form):
    subject_name = forms.CharField(
        label=_("Your name, as it may appear in the data"),
        help_text=_("Give the name you are known by in public texts. We only look for this person."),
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    scope = forms.ChoiceField(
        label=_("Which data should be removed?"),
        choices=[
            (SCOPE_ALL, _("Everything about me that the AI model was trained on")),
            (SCOPE_SPECIFIC, _("Only the texts I describe below")),
        ],
        initial=SCOPE_ALL,
        widget=forms.RadioSelect,
    )
    target_model = forms.ModelChoiceField(
        label=_("Which AI model? (optional)"),
        queryset=TargetModel.objects.order_by("name"),
        required=False,
        empty_label=_("I don't know / any of them"),
    )
    description = forms.CharField(
        label=_("Describe the data (optional)"),
        help_text=_("For example where the text appeared, or other names you are known by."),
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    upload = forms.FileField(
        label=_("Attach a text file (optional)"),
        required=False,
        help_text=_("A plain-text file (.txt, .md, .csv, .json or .jsonl) with the text in question."),
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_EXTENSIONS)}),
    )
    jurisdiction = forms.ChoiceField(
        label=_("Where do you live?"), choices=JURISDICTION_CHOICES, initial=Jurisdiction.GDPR,
        widget=forms.RadioSelect,
    )
    legal_ground = forms.ChoiceField(
        label=_("Why should the data be removed?"), choices=LEGAL_GROUND_CHOICES, required=False,
        initial=LegalGround.NONE, widget=forms.RadioSelect,
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=100)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["upload"].help_text = _(
            "A plain-text file (.txt, .md, .csv, .json or .jsonl) of at most %(limit)s."
        ) % {"limit": filesizeformat(upload_max_bytes())}
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4().hex)

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if not upload:
            return None
        _check_upload_size(upload)
        name = upload.name.lower()
        if not name.endswith(UPLOAD_EXTENSIONS):
            raise forms.ValidationError(
                _("Only plain-text files can be attached (.txt, .md, .csv, .json, .jsonl)."), code="file_type"
            )
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(_("The file is not UTF-8 text."), code="file_encoding") from exc
        return {"name": upload.name, "text": text}

    def clean(self):
        data = super().clean()
        if data.get("scope") == SCOPE_SPECIFIC and not data.get("description") and not data.get("upload"):
            if "description" not in self.errors and "upload" not in self.errors:
                self.add_error(
                    "description",
                    _("Describe the texts to remove, or attach a file, when you ask to remove only some texts."),
                )
        return data

    def description_text(self) -> str:
        """The free text stored on the ticket: the scope and the owner's description."""
        data = self.cleaned_data
        parts = []
        if data.get("scope") == SCOPE_SPECIFIC:
            parts.append("[scope: only the texts described]")
        if data.get("description"):
            parts.append(data["description"])
        return "\n\n".join(parts)

    def evidence_text(self) -> str:
        """The uploaded file's text (stored encrypted by the service, purged after certification)."""
        upload = self.cleaned_data.get("upload")
        return upload["text"] if upload else ""


class IdentityCodeForm(SummaryMixin, forms.Form):
    code = forms.RegexField(
        label=_("Confirmation code"),
        regex=r"^\s*\d{6}\s*$",
        help_text=_("The 6-digit code we sent to your e-mail address."),
        error_messages={"invalid": _("Enter the 6 digits from the e-mail.")},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "maxlength": "8"}),
    )


class CertificateCheckForm(SummaryMixin, forms.Form):
    document = forms.CharField(
        label=_("Paste the certificate (JSON)"), required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    upload = forms.FileField(label=_("…or upload the certificate file"), required=False,
                             widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}))

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if not upload:
            return None
        _check_upload_size(upload)
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(_("The file is not UTF-8 text."), code="file_encoding") from exc

    def clean(self):
        data = super().clean()
        text = data.get("upload") or data.get("document") or ""
        if not text.strip() and not self.errors:
            raise forms.ValidationError(_("Paste the certificate or choose a file."), code="empty")
        data["text"] = text
        data["parsed"], data["parse_error"] = None, ""
        if text.strip():
            try:
                data["parsed"] = json_loads_strict(text)
            except ValueError as exc:  # also too deep, NaN/Infinity, NUL, out-of-range numbers
                data["parse_error"] = _("The text is not valid JSON, so it cannot be a certificate (%(why)s).") % {
                    "why": exc}
        problem = certificate_shape_problem(data["parsed"])
        if problem:
            raise forms.ValidationError(problem, code="certificate_shape")
        return data


def certificate_shape_problem(document) -> str:
    """A message when a parsed certificate has fields of the wrong type, else ``""``."""
    if document is None:
        return ""
    if not isinstance(document, dict):
        return str(_("A certificate is a JSON object with payload, signature, key_id and algorithm."))
    if "payload" in document and not isinstance(document["payload"], dict):
        return str(_("The certificate's payload must be a JSON object."))
    wrong = [k for k in ("signature", "key_id", "algorithm") if k in document and not isinstance(document[k], str)]
    if wrong:
        return str(_("These certificate fields must be text: %(fields)s.") % {"fields": ", ".join(wrong)})
    return ""




PRESET_CHOICES = [
    ("", _("The model's own recipe (recommended)")),
    ("tiny", _("Demo-size model (about 1 M parameters)")),
    ("smollm2-135m", _("SmolLM2-135M, full fine-tuning")),
    ("smollm2-135m-lora", _("SmolLM2-135M with a LoRA adapter (fast on CPU)")),
    ("test", _("Unit-test model (one short epoch)")),
]


class ApproveForm(SummaryMixin, forms.Form):
    """Approval (issue 21 item 6): the method as a list with descriptions, a named preset, the usual
    settings as typed fields, and raw JSON only under "advanced". Every value is checked by
    ``services.hyperparameters_check`` when the approval runs. ``readonly`` (auditors) disables all."""

    method = forms.ChoiceField(label=_("Unlearning method"), widget=forms.RadioSelect)
    records = forms.TypedMultipleChoiceField(
        label=_("Records to remove"), coerce=int, widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Confirm at least one record; with none there is nothing to remove.")},
    )
    preset = forms.ChoiceField(label=_("Settings preset"), choices=PRESET_CHOICES, required=False,
                               help_text=_("Named starting points per model size (unlearning_engine.presets)."))
    epochs = forms.IntegerField(label=_("Epochs"), required=False, min_value=1, max_value=1000,
                                help_text=_("Empty: the preset's or recipe's value."))
    lr = forms.FloatField(label=_("Learning rate"), required=False, min_value=1e-8, max_value=1.0)
    batch_size = forms.IntegerField(label=_("Batch size"), required=False, min_value=1, max_value=4096)
    hyperparameters = forms.CharField(
        label=_("Other hyper-parameters (JSON, advanced)"), required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=_('For example {"beta": 0.1}. The fields above win over the same keys here.'),
    )

    def __init__(self, *args, methods: list[str], records, readonly: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = [(m, m) for m in methods]
        if "dp2" in methods:
            self.fields["method"].initial = "dp2"
        self.fields["records"].choices = [(r.pk, str(r.pk)) for r in records]
        self.fields["records"].initial = [r.pk for r in records]
        if readonly:
            for field in self.fields.values():
                field.disabled = True

    def clean_hyperparameters(self):
        text = self.cleaned_data.get("hyperparameters", "").strip()
        if not text:
            return {}
        try:
            value = json_loads_strict(text)
        except ValueError as exc:
            raise forms.ValidationError(_("Not valid JSON (%(why)s).") % {"why": exc}, code="json") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(_("Give a JSON object, e.g. {\"epochs\": 2}."), code="json_object")
        return value

    def clean(self):
        data = super().clean()
        merged = dict(data.get("hyperparameters") or {})
        for key in ("preset", "epochs", "lr", "batch_size"):
            if data.get(key) not in (None, ""):
                merged[key] = data[key]
        data["hyperparameters"] = merged
        return data


class DenyForm(SummaryMixin, forms.Form):
    """Only the exceptions of the ticket's jurisdiction are offered (``legal.denial_exceptions_for``)."""

    exception_code = forms.ChoiceField(label=_("Legal exception"))
    reason = forms.CharField(
        label=_("Reason (sent to the requester)"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("The e-mailed notice adds how to complain or appeal for this request's law."),
    )

    def __init__(self, *args, jurisdiction: str, **kwargs):
        from ..legal import denial_exceptions_for

        super().__init__(*args, **kwargs)
        self.fields["exception_code"].choices = [("", "—")] + [(c.value, c.label) for c in denial_exceptions_for(jurisdiction)]
