"""Serializers of the operator onboarding API (issue 14): corpora, models, versions, preparations."""
from __future__ import annotations

from rest_framework import serializers

from ..models import EvaluationReport, ModelVersion, PreparationJob, TargetModel, TrainingCorpus


def _object(value):
    if value is not None and not isinstance(value, dict):
        raise serializers.ValidationError("must be a JSON object")
    return value


class CorpusCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    source_uri = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                       help_text="s3://bucket/key.jsonl, or (embedded mode) a local path")
    file = serializers.FileField(required=False, help_text="upload (multipart) instead of source_uri: JSONL, or "
                                 "with format=image_archive a zip/tar of PNG/JPEG + manifest, with format=csv a CSV")
    format = serializers.ChoiceField(choices=["jsonl", "image_archive", "csv"], required=False, default="jsonl")
    classes = serializers.CharField(required=False, allow_blank=True, default="",
                                    help_text="class list (JSON list or comma-separated); required for image_archive")
    resize = serializers.CharField(required=False, allow_blank=True, default="", help_text="WIDTHxHEIGHT, e.g. 8x8")
    mode = serializers.ChoiceField(choices=["L", "RGB"], required=False, default="L")
    manifest = serializers.FileField(required=False, help_text="image_archive: the JSONL manifest, when not in "
                                     "the archive as manifest.jsonl")

    def validate(self, attrs):
        if bool(attrs.get("source_uri")) == bool(attrs.get("file")):
            raise serializers.ValidationError("give exactly one of 'file' (upload) or 'source_uri'")
        if attrs.get("format", "jsonl") != "jsonl" and not attrs.get("file"):
            raise serializers.ValidationError(f"format '{attrs['format']}' needs an uploaded 'file'")
        return attrs


class CorpusSerializer(serializers.ModelSerializer):
    train_records = serializers.SerializerMethodField()
    holdout_records = serializers.SerializerMethodField()
    subjects = serializers.SerializerMethodField()

    class Meta:
        model = TrainingCorpus
        fields = ["id", "name", "description", "kind", "artifact_uri", "content_sha256", "record_count",
                  "train_records", "holdout_records", "subjects", "created_at"]

    def get_train_records(self, obj) -> int:
        return obj.records.filter(split="train").count()

    def get_holdout_records(self, obj) -> int:
        return obj.records.filter(split="holdout").count()

    def get_subjects(self, obj) -> int:
        return obj.records.exclude(subject=None).values("subject").distinct().count()


class ModelCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    corpus = serializers.CharField(help_text="training corpus id or name")
    artifact_uri = serializers.CharField(max_length=1000, help_text="HF model directory: s3://… or local path")
    weights_sha256 = serializers.CharField(max_length=64, help_text="sha256 of model.safetensors (or of the GGUF)")
    gguf_file = serializers.CharField(required=False, allow_blank=True, default="")
    base_artifact_uri = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
    base_sha256 = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    base_gguf_file = serializers.CharField(required=False, allow_blank=True, default="")
    training_recipe = serializers.JSONField(required=False, default=dict, validators=[_object])
    reference_policy = serializers.ChoiceField(choices=["none", "per_request", "calibration_only"],
                                               default="per_request")
    family = serializers.ChoiceField(choices=["causal_lm", "image_classifier", "tabular_classifier"],
                                     default="causal_lm", help_text="model family (DESIGN §11)")


class PrepareSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["dp_base", "reference"])
    dp_base = serializers.JSONField(required=False, validators=[_object],
                                    help_text="dp_base recipe overrides (target_epsilon, epochs…)")
    record_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**62), required=False,
                                       max_length=100_000)
    subject_id = serializers.UUIDField(required=False)
    purpose = serializers.ChoiceField(choices=["request", "calibration"], required=False, default="request")
    seeds = serializers.IntegerField(required=False, min_value=1, max_value=8,
                                     help_text="reference only: number of exact retrains with different training "
                                               "seeds (PrivLeak reference = their mean AUC, CI with their seed "
                                               "variation); default: the model recipe's reference_seeds, else 1")
    hyperparameters = serializers.JSONField(required=False, validators=[_object])


class CalibrateSerializer(serializers.Serializer):
    """``POST /models/{id}/calibrate/`` (issue 15): a bounded search over the method's main knobs."""

    method = serializers.CharField(max_length=40)
    search_space = serializers.JSONField(required=False, validators=[_object], help_text=(
        "{knob: [values]} within unlearning_engine.hparams.BOUNDS (default: a grid around the model's recipe)"))
    subject_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=50,
                                        help_text="calibration subjects (not being erased); default: picked")
    subjects = serializers.IntegerField(required=False, default=1, min_value=1, max_value=50,
                                        help_text="how many subjects to pick when subject_ids is not given")
    strategy = serializers.ChoiceField(choices=["grid", "random"], required=False, default="grid")
    max_trials = serializers.IntegerField(required=False, default=12, min_value=1, max_value=100)
    max_seconds = serializers.FloatField(required=False, default=3600.0, min_value=1, max_value=7 * 24 * 3600)
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)


class MethodCalibrationSerializer(serializers.Serializer):
    method = serializers.CharField()
    hyperparameters = serializers.JSONField()
    calibration = serializers.UUIDField(source="calibration.public_id")
    summary = serializers.JSONField()
    updated_at = serializers.DateTimeField()


class PreparationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    model = serializers.IntegerField(source="model_id", allow_null=True)
    corpus = serializers.IntegerField(source="corpus_id", allow_null=True)

    class Meta:
        model = PreparationJob
        fields = ["id", "kind", "model", "corpus", "params", "requested_by", "status", "progress", "attempts",
                  "worker", "queued_at", "started_at", "heartbeat_at", "finished_at", "device_seconds", "result",
                  "error"]


class ModelVersionSerializer(serializers.ModelSerializer):
    parent = serializers.IntegerField(source="parent_id", allow_null=True)
    job = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["id", "role", "sequence", "is_serving", "parent", "job", "artifact_uri", "weights_sha256",
                  "forget_set_sha256", "metrics", "created_at"]

    def get_job(self, obj) -> str | None:
        return str(obj.produced_by.public_id) if obj.produced_by_id else None

    def get_metrics(self, obj) -> dict:
        """The last evaluation report of this version: ``{role, metrics, passed}`` or ``{}``."""
        report = EvaluationReport.objects.filter(model_version=obj).order_by("-id").first()
        return {"role": report.role, "metrics": report.metrics, "passed": report.passed} if report else {}


class TargetModelSerializer(serializers.ModelSerializer):
    corpus = serializers.IntegerField(source="corpus_id")
    serving_version = serializers.SerializerMethodField()
    dp2_available = serializers.SerializerMethodField()

    class Meta:
        model = TargetModel
        fields = ["id", "name", "family", "architecture", "tokenizer", "corpus", "training_recipe", "base_artifact_uri",
                  "base_sha256", "dp_base_artifact_uri", "dp_base_sha256", "privacy_ledger", "reference_policy",
                  "serving_version", "dp2_available", "created_at"]

    def get_serving_version(self, obj) -> dict | None:
        v = obj.versions.filter(is_serving=True).first()
        return {"id": v.pk, "sequence": v.sequence, "weights_sha256": v.weights_sha256} if v else None

    def get_dp2_available(self, obj) -> bool:
        from ..services import model_dp2_unavailable_reason

        return not model_dp2_unavailable_reason(obj)
