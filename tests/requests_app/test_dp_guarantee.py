"""The certificate's DP statement (issue 12 item 4): ε per data subject for a subject-level ledger, the
group bound for a record-level one, and nothing claimed outside the policy or with a private tokenizer."""
import math
from types import SimpleNamespace

import pytest

from evaluation.certificate import canonical_json
from requests_app.certificates import DP_LIMITATION, dp_guarantee, dp_limitations

PUBLIC_TOK = {"kind": "public_corpus", "name": "wikitext2", "sha256": "0" * 64}


def model_with(**ledger):
    base = {"target_epsilon": 8.0, "epsilon": 7.98, "delta": 1e-6, "noise_multiplier": 0.95,
            "sample_rate": 0.1, "steps": 80, "accountant": "prv", "max_grad_norm": 1.0, "n_records": 600,
            "n_units": 30, "privacy_unit": "subject", "records_without_subject": 0,
            "max_records_per_unit": 20, "epsilons": {"rdp": 9.0, "prv": 7.98}, "rdp_optimal_order": 3.5,
            "tokenizer_provenance": PUBLIC_TOK,
            "limitations": ["The DP hyper-parameters ... were chosen on the private corpus; ..."],
            "noise_source": "torch.Generator seeded with 64 bits from os.urandom"}
    base.update(ledger)
    return SimpleNamespace(privacy_ledger=base, dp_base_sha256="ab" * 32)


def test_subject_level_states_epsilon_per_subject_whatever_k():
    for k in (1, 20, 200):
        g = dp_guarantee(model_with(), k)
        assert g["claimed"] is True and g["not_claimed_reasons"] == []
        assert g["privacy_unit"] == "subject" and g["k_records"] == k
        assert g["per_subject_epsilon"] == 7.98 and g["per_subject_delta"] == 1e-6
        assert "per data subject" in g["statement"]
        for key in ("n_units", "sample_rate", "noise_multiplier", "max_grad_norm", "steps", "accountant",
                    "target_epsilon", "per_unit_delta"):
            assert g[key] is not None
        canonical_json(g)  # finite numbers only


def test_record_level_group_bound_above_policy_is_not_claimed():
    g = dp_guarantee(model_with(privacy_unit="record", n_units=600, epsilon=8.0), 20)
    assert g["claimed"] is False and g["per_subject_epsilon"] is None and g["per_subject_delta"] is None
    assert g["group_bound_not_a_guarantee"]["epsilon"] == pytest.approx(160.0)
    assert g["group_bound_not_a_guarantee"]["delta"] == 1.0  # 20·e^152·1e-6, capped at 1
    assert g["statement"].startswith("Differential privacy is not claimed")
    assert "No meaningful differential-privacy guarantee" in g["statement"]
    canonical_json(g)
    # k·ε > 709: e^{(k-1)ε} overflows; still a finite, capped, JSON-safe document
    g = dp_guarantee(model_with(privacy_unit="record", epsilon=8.0), 100)
    assert g["claimed"] is False and g["group_bound_not_a_guarantee"]["delta"] == 1.0
    canonical_json(g)


def test_record_level_within_policy_is_claimed_as_group_privacy():
    g = dp_guarantee(model_with(privacy_unit="record", n_units=600, epsilon=4.0, delta=1e-8), 2)
    assert g["claimed"] is True and g["privacy_unit"] == "record"
    assert g["per_subject_epsilon"] == pytest.approx(8.0)
    assert g["per_subject_delta"] == pytest.approx(2 * math.exp(4.0) * 1e-8, rel=1e-9)
    # same ε but δ = 1e-6: δ_eff = 2·e^4·1e-6 ≈ 1.1e-4 ≥ 1e-5, not claimed
    assert dp_guarantee(model_with(privacy_unit="record", epsilon=4.0), 2)["claimed"] is False
    assert "group privacy" in g["statement"]


def test_unlinked_records_fall_back_to_the_group_bound():
    g = dp_guarantee(model_with(records_without_subject=600, n_units=600), 20)
    assert g["privacy_unit"] == "record" and g["ledger_privacy_unit"] == "subject"
    assert g["claimed"] is False and g["group_bound_not_a_guarantee"]["epsilon"] == pytest.approx(20 * 7.98)


@pytest.mark.parametrize("prov", [None, {"kind": "private_corpus", "name": "demo", "sha256": ""},
                                  {"kind": "unrecorded"}, {"kind": "unknown"}])
def test_tokenizer_not_public_is_not_claimed(prov):
    g = dp_guarantee(model_with(tokenizer_provenance=prov), 20)
    assert g["claimed"] is False and g["per_subject_epsilon"] is None
    assert any("tokenizer" in r for r in g["not_claimed_reasons"])


def test_policy_settings_and_large_delta(settings):
    assert dp_guarantee(model_with(delta=1e-5), 20)["claimed"] is False  # δ ≥ 1e-5
    over = dp_guarantee(model_with(epsilon=8.5), 20)
    assert over["claimed"] is False and any("exceeds the target" in r for r in over["not_claimed_reasons"])
    settings.DP_POLICY_MAX_EPSILON = 5.0
    g = dp_guarantee(model_with(), 20)
    assert g["claimed"] is False and g["policy"]["max_epsilon"] == 5.0


def test_no_ledger_and_limitations():
    assert dp_guarantee(SimpleNamespace(privacy_ledger={}, dp_base_sha256=""), 3) is None
    lim = dp_limitations(model_with())
    assert lim[0] == DP_LIMITATION and any("private corpus" in x for x in lim)
    assert any("os.urandom" in x for x in lim)
