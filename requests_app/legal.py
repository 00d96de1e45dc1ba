"""What the law lets us answer per jurisdiction: denial exceptions and how to complain or appeal.

- GDPR (and ``other``, where the service applies the GDPR as its baseline): the exceptions of
  Art. 17(3)(a)–(e), plus Art. 12(5) (manifestly unfounded or excessive) and an unverifiable
  identity (Art. 12(6)). Art. 12(4): a refusal states the reasons and the right to lodge a
  complaint with a supervisory authority (Art. 77) and to seek a judicial remedy (Art. 79).
- CCPA (Cal. Civ. Code §1798.105(d)(1)–(9)) and an unverifiable request (§1798.105(c)(1) asks
  for a *verifiable* consumer request). A denial tells the consumer how to appeal to the business
  (``PRIVACY_APPEAL_CONTACT``) and that they may complain to the California Privacy Protection
  Agency or the Attorney General.
"""
from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _

from .models import DenialException, Jurisdiction

_GDPR = [DenialException.GDPR_A, DenialException.GDPR_B, DenialException.GDPR_C, DenialException.GDPR_D,
         DenialException.GDPR_E, DenialException.MANIFESTLY_UNFOUNDED, DenialException.UNVERIFIED]
_CCPA = [DenialException.CCPA_1, DenialException.CCPA_2, DenialException.CCPA_3, DenialException.CCPA_4,
         DenialException.CCPA_5, DenialException.CCPA_6, DenialException.CCPA_7, DenialException.CCPA_8,
         DenialException.CCPA_9, DenialException.UNVERIFIED]


def denial_exceptions_for(jurisdiction: str) -> list[DenialException]:
    """The exception codes a denial of a ``jurisdiction`` ticket may cite (CCPA: §1798.105(d);
    GDPR and other: Art. 17(3), 12(5))."""
    return list(_CCPA if jurisdiction == Jurisdiction.CCPA else _GDPR)


def appeal_contact() -> str:
    return str(getattr(settings, "PRIVACY_APPEAL_CONTACT", "") or settings.DEFAULT_FROM_EMAIL)


def complaint_options(jurisdiction: str) -> list[str]:
    """Sentences telling the data owner how to complain about or appeal a decision (plain text)."""
    contact = appeal_contact()
    if jurisdiction == Jurisdiction.CCPA:
        return [
            _("You can appeal this decision: write to %(contact)s with your request reference, and a person who "
              "did not take the decision will review it.") % {"contact": contact},
            _("You can also file a complaint with the California Privacy Protection Agency (cppa.ca.gov) or the "
              "California Attorney General (oag.ca.gov/privacy)."),
        ]
    authority = str(getattr(settings, "PRIVACY_SUPERVISORY_AUTHORITY", "") or "")
    return [
        _("You can ask us to reconsider: write to %(contact)s with your request reference.") % {"contact": contact},
        (_("You have the right to lodge a complaint with a data-protection supervisory authority (GDPR Art. 77), "
           "in particular %(authority)s, or in the EU or EEA country where you live or work, or where you think "
           "the law was broken.") % {"authority": authority}) if authority else
        _("You have the right to lodge a complaint with a data-protection supervisory authority (GDPR Art. 77) "
          "in the EU or EEA country where you live or work, or where you think the law was broken (UK: the "
          "Information Commissioner's Office)."),
        _("You can also go to court (GDPR Art. 79)."),
    ]
