"""The SmolLM2 demo's corpus and recipe (issues 12 and 14): enough data subjects for subject-level DP."""
import json

from django.conf import settings

from requests_app.demo_smollm2 import smollm2_corpus_jsonl, smollm2_recipe
from requests_app.preparation import dp_base_kwargs
from unlearning_engine.dp import MIN_DP_UNITS


def test_corpus_has_twenty_subjects_and_the_forget01_author_last(tmp_path):
    rows = [json.loads(line) for line in smollm2_corpus_jsonl(tmp_path / "c.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    holdout = [r for r in rows if r["split"] == "holdout"]
    assert len(train) == 100 and len(holdout) == 20
    subjects = [r["subject_id"] for r in train]
    assert len(set(subjects)) == 20 == MIN_DP_UNITS
    assert subjects[-1] == "tofu-train-199" and subjects.count("tofu-train-199") == 5
    assert {r["subject_id"] for r in holdout} == {"tofu-holdout-0"}


def test_recipe_is_subject_level_with_a_claimable_delta():
    recipe = smollm2_recipe()
    kwargs = dp_base_kwargs(recipe["dp_base"])
    assert kwargs["privacy_unit"] == "subject" and kwargs["target_epsilon"] == 8.0
    assert kwargs["delta"] < settings.DP_POLICY_MAX_DELTA and kwargs["delta"] < 1 / 20
    assert "batch_size" not in kwargs and kwargs["sample_rate"] == 0.25
    assert recipe["methods"]["dp2"]["epochs"] == recipe["target"]["epochs"] == 3
    assert recipe["methods"]["dp2"]["lora"]["r"] == 16
