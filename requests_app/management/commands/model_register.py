"""``manage.py model_register --name N --corpus C --artifact DIR|URI --sha256 H [--base ...]``.

The same service as ``POST /api/v1/models/``: sha256 verified, weights loaded, tokenizer checked
against the vocabulary, artifacts copied into the store, version 0 serving.
"""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from requests_app import services
from requests_app.models import TrainingCorpus


class Command(BaseCommand):
    help = "Register an existing model (HF safetensors directory or GGUF) trained on an ingested corpus."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--corpus", required=True, help="corpus name")
        parser.add_argument("--artifact", required=True, help="model directory: s3://… or a local path")
        parser.add_argument("--sha256", required=True, help="sha256 of model.safetensors (or of --gguf-file)")
        parser.add_argument("--gguf-file", default="")
        parser.add_argument("--base", default="", help="pre-trained base directory (for retrain and dp_base)")
        parser.add_argument("--base-sha256", default="")
        parser.add_argument("--base-gguf-file", default="")
        parser.add_argument("--recipe", default="", help="JSON file with the training recipe")
        parser.add_argument("--reference-policy", default="per_request",
                            choices=["none", "per_request", "calibration_only"])
        parser.add_argument("--actor", default="cli:ml_operator")

    def handle(self, *args, **opts):
        corpus = TrainingCorpus.objects.filter(name=opts["corpus"]).first()
        if corpus is None:
            raise CommandError(f"no corpus named '{opts['corpus']}'")
        recipe = json.loads(Path(opts["recipe"]).read_text()) if opts["recipe"] else {}
        try:
            model = services.model_register_from_artifact(
                actor=opts["actor"], name=opts["name"], corpus=corpus, artifact_uri=opts["artifact"],
                weights_sha256=opts["sha256"], gguf_file=opts["gguf_file"], base_artifact_uri=opts["base"],
                base_sha256=opts["base_sha256"], base_gguf_file=opts["base_gguf_file"], training_recipe=recipe,
                reference_policy=opts["reference_policy"])
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"registered model '{model.name}' (id {model.pk}): {model.architecture}, {model.tokenizer}")
