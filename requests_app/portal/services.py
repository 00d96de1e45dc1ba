"""Portal-only mutations: e-mail sign-in links.

A sign-in link carries a token signed with :class:`django.core.signing.TimestampSigner` (salted,
time-limited by ``PORTAL_SIGNIN_TTL_SECONDS``). It is one-time without a table of used tokens: the
signed value holds a digest of the account's state (primary key, last login, password hash) or
``new`` when no account exists yet. Signing in changes ``last_login`` (or creates the account), so
the digest no longer matches and a second use of the same link is refused.
"""
from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..audit import audit_event_record

SIGNIN_SALT = "requests_app.portal.signin"
NEW_ACCOUNT = "new"


class SignInError(Exception):
    """The sign-in link is invalid, expired or already used (the message is user-facing)."""


def signin_ttl_seconds() -> int:
    return int(getattr(settings, "PORTAL_SIGNIN_TTL_SECONDS", 15 * 60))


def _normalise_email(email: str) -> str:
    return email.strip().lower()


def _user_for_email(email: str):
    User = get_user_model()
    return User.objects.filter(email__iexact=email).order_by("pk").first()


def _account_state(user) -> str:
    if user is None:
        return NEW_ACCOUNT
    raw = f"{user.pk}:{user.last_login.isoformat() if user.last_login else ''}:{user.password}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def signin_token_make(*, email: str, next_url: str = "") -> str:
    """A signed, time-stamped token for ``email`` bound to the account's current state."""
    email = _normalise_email(email)
    state = _account_state(_user_for_email(email))
    return signing.TimestampSigner(salt=SIGNIN_SALT).sign_object({"e": email, "s": state, "n": next_url})


def signin_link_send(*, email: str, link_for, next_url: str = "") -> None:
    """E-mail a one-time sign-in link to ``email``.

    ``link_for(token)`` turns a token into an absolute URL. Sends nothing for a deactivated
    account, but the caller shows the same message either way (no account enumeration).
    """
    email = _normalise_email(email)
    user = _user_for_email(email)
    if user is not None and not user.is_active:
        return
    url = link_for(signin_token_make(email=email, next_url=next_url))
    minutes = signin_ttl_seconds() // 60
    send_mail(
        _("Your sign-in link"),
        _(
            "Open this link to sign in to the data-removal portal:\n\n{url}\n\n"
            "The link works once and expires in {minutes} minutes. If you did not ask for it, ignore this e-mail."
        ).format(url=url, minutes=minutes),
        settings.DEFAULT_FROM_EMAIL,
        [email],
    )


def signin_token_peek(token: str) -> dict:
    """Check signature and age without using the token (for the confirmation page).

    Raises:
        SignInError: expired or tampered token.
    """
    try:
        return signing.TimestampSigner(salt=SIGNIN_SALT).unsign_object(token, max_age=signin_ttl_seconds())
    except signing.SignatureExpired as exc:
        raise SignInError(_("This sign-in link has expired. Ask for a new one.")) from exc
    except signing.BadSignature as exc:
        raise SignInError(_("This sign-in link is not valid. Ask for a new one.")) from exc


def signin_token_consume(token: str):
    """Use a sign-in token once: returns the (possibly new) user and records the login time.

    The account is created on first use with the e-mail address as user name. The caller logs the
    user in (``django.contrib.auth.login``).

    Raises:
        SignInError: expired, tampered or already used token, or a deactivated account.
    """
    data = signin_token_peek(token)
    email = data.get("e", "")
    User = get_user_model()
    used = SignInError(_("This sign-in link was already used. Ask for a new one."))
    try:
        with transaction.atomic():
            user = User.objects.select_for_update().filter(email__iexact=email).order_by("pk").first()
            if not hmac.compare_digest(_account_state(user), str(data.get("s", ""))):
                raise used
            if user is None:
                user = User(username=email[:150], email=email)
                user.set_unusable_password()
                user.last_login = timezone.now()
                user.save()
                audit_event_record(actor=user, verb="user.created_by_email_link", obj=user,
                                   after={"email_sha256": hashlib.sha256(email.encode()).hexdigest()})
            else:
                if not user.is_active:
                    raise SignInError(_("This account is disabled."))
                user.last_login = timezone.now()
                user.save(update_fields=["last_login"])
    except IntegrityError as exc:  # a concurrent first use created the account
        raise used from exc
    return user


def signin_next_url(token_data: dict) -> str:
    return str(token_data.get("n") or "")
