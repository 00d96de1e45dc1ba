"""Issue 21 item 12: the certificate as a downloadable PDF (WeasyPrint) with the page's content
and the signature block, linked next to the JSON."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

weasyprint = pytest.importorskip("weasyprint")


def _pdf_text(html: str) -> tuple[int, str]:
    """(pages, the laid-out text) of ``html`` as WeasyPrint lays it out for the PDF."""
    document = weasyprint.HTML(string=html).render()
    texts = []
    for p in document.pages:
        for box in p._page_box.descendants():
            if getattr(box, "text", None):
                texts.append(box.text)
    return len(document.pages), " ".join(texts)


def test_pdf_download_and_links(client_for, realistic_certificate):
    ticket, cert = realistic_certificate["ticket"], realistic_certificate["certificate"]
    owner = client_for("owner")
    r = owner.get(f"/requests/{ticket.public_id}/certificate.pdf")
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and len(r.content) > 5_000
    assert r["Content-Disposition"] == f'attachment; filename="certificate-{cert.public_id}.pdf"'
    assert client_for("other_owner").get(f"/requests/{ticket.public_id}/certificate.pdf").status_code == 404
    assert client_for("auditor").get(f"/dashboard/certificates/{cert.public_id}.pdf").content.startswith(b"%PDF-")
    page = owner.get(f"/requests/{ticket.public_id}/certificate/").content.decode()
    assert f'href="/requests/{ticket.public_id}/certificate.pdf"' in page and 'id="download-json"' in page
    detail = owner.get(f"/requests/{ticket.public_id}/").content.decode()
    assert 'id="certificate-pdf"' in detail


def test_pdf_has_the_same_content_and_the_signature_block(realistic_certificate):
    from requests_app.portal.certificate_pdf import certificate_print_html

    cert, doc = realistic_certificate["certificate"], realistic_certificate["document"]
    pages, text = _pdf_text(certificate_print_html(cert))
    assert pages >= 2  # the signed content starts on its own page
    assert "Genuine: the signature is valid." in text
    assert "Verbatim memorisation of the removed texts (VerbMem)" in text
    assert "[6.1, 18.0]" in text and "[−3.2, 17.3]" in text  # CIs as on the page
    readable = text.split("Full signed content")[0]  # the signed JSON itself is verbatim, as on the page
    assert "(n = 20 forget, 20 holdout)" in readable and "{'" not in readable
    assert doc["key_id"] in text and "Ed25519" in text
    assert doc["signature"][:40] in text.replace(" ", "")


def test_no_certificate_is_404(client_for, users, forget_subject):
    from requests_app import services

    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    r = client_for("owner").get(f"/requests/{ticket.public_id}/certificate.pdf")
    assert r.status_code == 404 and "No certificate has been issued" in r.content.decode()


def test_pdf_fetches_no_url(realistic_certificate, monkeypatch):
    from requests_app.portal import certificate_pdf

    html = '<img src="http://169.254.169.254/latest/meta-data/"><p>x</p>'
    monkeypatch.setattr(certificate_pdf, "certificate_print_html", lambda cert: html)
    fetched = []
    def refuse(url):
        fetched.append(url)
        raise ValueError("refused")

    monkeypatch.setattr(certificate_pdf, "_refuse_urls", refuse)
    assert certificate_pdf.certificate_pdf_bytes(realistic_certificate["certificate"]).startswith(b"%PDF-")
    assert fetched == ["http://169.254.169.254/latest/meta-data/"]
