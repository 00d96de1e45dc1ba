"""The approve screen (issue 21 item 6): methods with the registry's descriptions, erasure
capability and past compute time, named presets and typed settings (JSON under "advanced"),
read-only for auditors."""
from __future__ import annotations

import re

import pytest

from requests_app.models import RemovalTicket, TicketStatus, UnlearningJob
from requests_app.portal.forms import ApproveForm


@pytest.fixture
def in_review(users, forget_subject, certified_lineage):
    model = certified_lineage["model"]
    ticket = RemovalTicket.objects.create(requester=users["owner"], subject=forget_subject, target_model=model,
                                          status=TicketStatus.IN_REVIEW, received_at="2026-11-20T10:00:00Z",
                                          due_at="2026-12-20T10:00:00Z", reviewed_by=users["reviewer"])
    UnlearningJob.objects.filter(model=model).update(device_seconds=100.0)  # the two dp2 jobs of the lineage
    return ticket


def test_methods_are_listed_with_descriptions_certificate_and_time(client_for, in_review):
    page = client_for("approver").get(f"/dashboard/requests/{in_review.public_id}/").content.decode()
    methods = page.split('class="methods')[1].split("</fieldset>")[0]
    values = re.findall(r'type="radio" name="method" value="([a-z0-9_]+)"', methods)
    assert "dp2" in values and "retrain" in values and "eco" not in values
    assert "DP2Unlearning: fine-tune the DP base on the retain set (fewer epochs)" in methods
    assert methods.count("can yield an erasure certificate") == len(values)
    assert "about 1 min 40 s of compute on this model (mean of 2 past jobs)" in methods
    assert "no past job on this model yet" in methods  # the other methods
    assert "ECO prompt suppression (weights unchanged)" in methods.split("Not offered for an erasure request")[1]
    settings_box = page.split('class="settings"')[1].split("</fieldset>")[0]
    assert "SmolLM2-135M with a LoRA adapter (fast on CPU)" in settings_box
    assert "<details" in settings_box and "Advanced: other hyper-parameters as JSON" in settings_box


def test_auditor_sees_the_screen_read_only(client_for, in_review):
    page = client_for("auditor").get(f"/dashboard/requests/{in_review.public_id}/").content.decode()
    form = page.split('action="/dashboard/requests/')[1].split("</form>")[0]
    inputs = re.findall(r"<(?:input|select|textarea)\b[^>]*>", form)
    user_inputs = [i for i in inputs if 'type="hidden"' not in i]
    assert user_inputs and all(" disabled" in i for i in user_inputs)
    assert 'id="readonly-note"' in page and 'id="approve"' not in page and "Tick all" not in page


def test_settings_fields_and_preset_merge_over_the_advanced_json():
    form = ApproveForm({"method": "dp2", "records": ["7"], "preset": "tiny", "epochs": "3", "lr": "",
                        "batch_size": "8", "hyperparameters": '{"epochs": 9, "beta": 0.1}'},
                       methods=["dp2"], records=[type("R", (), {"pk": 7})()])
    assert form.is_valid(), form.errors
    assert form.cleaned_data["hyperparameters"] == {"epochs": 3, "beta": 0.1, "preset": "tiny", "batch_size": 8}
    bad = ApproveForm({"method": "dp2", "records": ["7"], "epochs": "0"}, methods=["dp2"],
                      records=[type("R", (), {"pk": 7})()])
    assert not bad.is_valid() and "epochs" in bad.errors


def test_a_classifier_model_lists_the_classifier_family_methods(client_for, in_review):
    """Issue 19: the approve screen offers the methods of the ticket's model family."""
    model = in_review.target_model
    model.family = "image_classifier"
    model.save(update_fields=["family"])
    page = client_for("approver").get(f"/dashboard/requests/{in_review.public_id}/").content.decode()
    methods = page.split('class="methods')[1].split("</fieldset>")[0]
    values = re.findall(r'type="radio" name="method" value="([a-z0-9_]+)"', methods)
    assert sorted(values) == ["dp2", "ft", "ga", "l1_sparse", "laf", "laf_r", "retrain", "rl"]
    assert "label-agnostic forgetting: two embedding VAEs" in methods
    assert "fine-tune the subject-level DP base on the retain set" in methods  # the classifier dp2's description
    assert "Not offered for an erasure request" not in methods  # eco is no classifier method at all
