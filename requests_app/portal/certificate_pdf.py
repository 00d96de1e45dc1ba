"""The certificate as a PDF (issue 21 item 12): the same content as the HTML page (the summary,
every check with its CI, the limitations) plus the signature block (algorithm, key id, signature,
the verification result and how to check it), laid out for A4 by WeasyPrint on the server.

WeasyPrint (BSD; needs Pango, which Debian ships) is a pure-Python HTML/CSS renderer: no browser
and no network. Its URL fetcher here refuses every URL, so a certificate's content cannot make the
server fetch anything; the stylesheet is inlined from ``static/portal/certificate_print.css``.
"""
from __future__ import annotations

import json

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import timezone

from ..certificates import certificate_verify_document
from .presentation import certificate_summary, verification_reason_text


class PdfUnavailable(RuntimeError):
    """WeasyPrint (or the Pango library it needs) is not installed on this server."""


def _refuse_urls(url: str) -> None:
    raise ValueError(f"the certificate PDF loads no external resource ({url[:80]})")


def _url_fetcher():
    """A WeasyPrint URL fetcher that fetches nothing (every URL goes to :func:`_refuse_urls`)."""
    from weasyprint.urls import URLFetcher

    class NoFetch(URLFetcher):
        def fetch(self, url, headers=None):
            _refuse_urls(url)

    return NoFetch()


def certificate_print_html(cert) -> str:
    """The print HTML of ``cert`` (what :func:`certificate_pdf_bytes` lays out)."""
    document = cert.as_document()
    result = certificate_verify_document(document)
    css_path = finders.find("portal/certificate_print.css")
    with open(css_path, encoding="utf-8") as fh:
        css = fh.read()
    return render_to_string("portal/certificate_pdf.html", {
        "certificate": cert, "document": document, "result": result,
        "reason": verification_reason_text(result.reason), "summary": certificate_summary(document["payload"]),
        "payload_json": json.dumps(document["payload"], indent=2, sort_keys=True, ensure_ascii=False),
        "css": css, "printed_at": timezone.now(),
    })


def certificate_pdf_bytes(cert) -> bytes:
    """``cert`` as a PDF document (bytes starting ``%PDF-``).

    Raises:
        PdfUnavailable: WeasyPrint or Pango is missing.
    """
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: the Pango shared library is missing
        raise PdfUnavailable(f"PDF rendering is not available on this server ({exc})") from exc
    html = certificate_print_html(cert)
    return HTML(string=html, url_fetcher=_url_fetcher()).write_pdf()


def certificate_pdf_response(cert):
    """The PDF as a download named after the certificate; 404 without a certificate, 503 without
    WeasyPrint."""
    from django.http import Http404, HttpResponse
    from django.utils.translation import gettext as _

    if cert is None:
        raise Http404(_("No certificate has been issued for this request yet."))
    try:
        body = certificate_pdf_bytes(cert)
    except PdfUnavailable as exc:
        return HttpResponse(str(exc), status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="certificate-{cert.public_id}.pdf"'
    return response
