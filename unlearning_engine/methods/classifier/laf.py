"""``laf`` / ``laf_r``: Label-Agnostic Forgetting (Shen et al., "Label-Agnostic Forgetting: A
Supervision-Free Unlearning in Deep Models", ICLR 2024, §3). No labels are read by ``laf``.

Stage 1 (representation extraction): with the original extractor f_o frozen, fit two VAEs on
embeddings: h_D on f_o(x) for all training data D = D_r ∪ D_f, and h_f on f_o(x) for D_f. The
per-example VAE loss (Kingma & Welling 2014, Eq. 10; squared-error decoder) of an embedding z is

    ℓ_h(z) = ‖z − dec(μ + σ⊙ε)‖²₂ + w · KL(N(μ, σ²) ‖ N(0, I)),
    KL = −½ Σ_k (1 + log σ²_k − μ²_k − σ²_k),   (μ, log σ²) = enc(z), ε ~ N(0, I)

(:func:`vae_loss`; w = ``vae_kld_weight``).

Stage 2, alternating each epoch (only the extractor f is updated; the head is kept):

- extractor unlearning (one pass over D_f batches, each paired with a D_r batch):
  L_UE = g(ℓ_{h_D}(f(x_r))) − g(ℓ_{h_f}(f(x_f))), with the bounded g(m) = exp(m/(m+1)) ∈ [1, e)
  applied to the batch-mean VAE losses: remaining data stays well modelled by h_D, forget data is
  pushed away from what h_f learned, and g bounds the ascent (§3.2). *Our reading* of §3.2.
- representation alignment (one pass over D_r batches, each paired with a D_f batch), InfoNCE with
  cosine similarity s and temperature τ: for each x_r, positive f_o(x_r), negatives f_o(x_f) of the
  paired forget batch:
  L_RA = −mean_r log( e^{s(f(x_r), f_o(x_r))/τ} / (e^{s(f(x_r), f_o(x_r))/τ} + Σ_f e^{s(f(x_r), f_o(x_f))/τ}) )
  (:func:`alignment_loss`, §3.3).

``laf_r`` then refits the head (extractor frozen) with CE on ``n_labels`` labelled retain records
(a seeded subset) — the "LAF+R" variant that uses a few labels (§4).

Hyper-parameters: the CNN defaults of public LAF re-implementations (VAE 10 epochs at 1e-3, KL
weight 0.025, 10 unlearning epochs at 1e-4 for both steps, τ = 1, head refit 5 epochs at 1e-4);
not verified against the LAF repository's ``hyperparameter.md`` (not available offline). See DESIGN §11.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...families.classifier.train import predict
from ...hparams import v_nonneg_int
from .base import ClassifierMethod


class EmbeddingVAE(nn.Module):
    """VAE on embeddings (E → latent k → E): enc Linear(E, h)-ReLU → (μ, log σ²); dec Linear(k, h)-ReLU-Linear(h, E)."""

    def __init__(self, dim: int, latent: int = 16, hidden: int = 64):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor):
        """(reconstruction (B, E), μ (B, k), log σ² (B, k)) with one reparameterised sample."""
        h = self.enc(z)
        mu, logvar = self.mu(h), self.logvar(h)
        sample = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.dec(sample), mu, logvar


def vae_loss(z, recon, mu, logvar, kld_weight: float) -> torch.Tensor:
    """Per-example VAE loss (B,) = Σ_d (z − recon)² + w·(−½ Σ_k (1 + logvar − μ² − e^{logvar})) (module docstring)."""
    rec = (z - recon).pow(2).sum(-1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)
    return rec + kld_weight * kl


def bounded_g(m: torch.Tensor) -> torch.Tensor:
    """g(m) = exp(m / (m + 1)) for m ≥ 0 (LAF §3.2)."""
    return torch.exp(m / (m + 1))


def alignment_loss(z_new, z_orig, z_neg, temperature: float) -> torch.Tensor:
    """InfoNCE L_RA (module docstring): z_new, z_orig (B, E); z_neg (M, E) → scalar."""
    a = F.normalize(z_new, dim=-1)
    pos = (a * F.normalize(z_orig, dim=-1)).sum(-1, keepdim=True)  # (B, 1)
    neg = a @ F.normalize(z_neg, dim=-1).T  # (B, M)
    logits = torch.cat([pos, neg], dim=1) / temperature
    return -(logits[:, 0] - torch.logsumexp(logits, dim=1)).mean()


class LAF(ClassifierMethod):
    name = "laf"
    description = "label-agnostic forgetting: two embedding VAEs, extractor unlearning, representation alignment"
    defaults = {"vae_epochs": 10, "vae_lr": 1e-3, "vae_kld_weight": 0.025, "vae_latent": 16, "epochs": 10,
                "lr_ue": 1e-4, "lr_ra": 1e-4, "temperature": 1.0, "batch_size": 32}
    int_params = frozenset({"vae_epochs", "vae_latent", "epochs", "batch_size"})
    uses_labels = False

    def _fit_vae(self, ctx, z: torch.Tensor, phase: str) -> EmbeddingVAE:
        hp = ctx.hp
        vae = EmbeddingVAE(z.shape[1], hp["vae_latent"]).to(ctx.device)

        def objective(m, b, _ob, _st):
            recon, mu, logvar = m(b["x"])
            return vae_loss(b["x"], recon, mu, logvar, hp["vae_kld_weight"]).mean(), int(b["x"].shape[0]), {}

        ctx.loop(vae, [(z[i], 0) for i in range(len(z))], phase=phase, epochs=hp["vae_epochs"], lr=hp["vae_lr"],
                 batch_size=hp["batch_size"], objective=objective)
        for p in vae.parameters():
            p.requires_grad_(False)
        return vae.eval()

    def train(self, ctx, model, forget, retain):
        from ...families.classifier.data import to_tensors

        hp = ctx.hp
        xf, _ = to_tensors(forget)  # labels never used by laf
        xr, _ = to_tensors(retain)
        _, zf0 = predict(model, xf)
        _, zr0 = predict(model, xr)
        h_all = self._fit_vae(ctx, torch.cat([zr0, zf0]), "vae_all")
        h_f = self._fit_vae(ctx, zf0, "vae_forget")
        ext = list(model.extractor.parameters())
        for p in model.head.parameters():
            p.requires_grad_(False)
        kw = hp["vae_kld_weight"]
        f_items = [(xf[i], i) for i in range(len(xf))]  # the "label" slot carries the row index
        r_items = [(xr[i], i) for i in range(len(xr))]
        zf0_d, zr0_d = zf0.to(ctx.device), zr0.to(ctx.device)

        def ue(m, fb, rb, _st):
            zr, zf = m.embed(rb["x"]), m.embed(fb["x"])
            lr_ = vae_loss(zr, *h_all(zr), kw).mean()
            lf = vae_loss(zf, *h_f(zf), kw).mean()
            return bounded_g(lr_) - bounded_g(lf), int(fb["x"].shape[0]), {"vae_r": lr_.item(), "vae_f": lf.item()}

        def ra(m, rb, fb, _st):
            loss = alignment_loss(m.embed(rb["x"]), zr0_d[rb["y"]], zf0_d[fb["y"]], hp["temperature"])
            return loss, int(rb["x"].shape[0]), {}

        for epoch in range(hp["epochs"]):
            ctx.loop(model, f_items, other=r_items, pair=True, phase=f"ue-{epoch}", epochs=1, lr=hp["lr_ue"],
                     batch_size=hp["batch_size"], objective=ue, params=ext)
            ctx.loop(model, r_items, other=f_items, pair=True, phase=f"ra-{epoch}", epochs=1, lr=hp["lr_ra"],
                     batch_size=hp["batch_size"], objective=ra, params=ext)
        for p in model.head.parameters():
            p.requires_grad_(True)
        ctx.details["labels_used"] = 0
        return model



class LAFR(LAF):
    name = "laf_r"
    description = "LAF, then refit the head with a few labelled retain records"
    defaults = {**LAF.defaults, "n_labels": 100, "head_epochs": 5, "head_lr": 1e-4}
    int_params = LAF.int_params | {"head_epochs"}
    validators = {"n_labels": v_nonneg_int}

    def train(self, ctx, model, forget, retain):
        model = super().train(ctx, model, forget, retain)
        hp = ctx.hp
        gen = torch.Generator().manual_seed(ctx.req.seed)
        pick = torch.randperm(len(retain), generator=gen)[:hp["n_labels"]].tolist()
        labelled = [retain[i] for i in sorted(pick)]
        if labelled:
            for p in model.extractor.parameters():
                p.requires_grad_(False)
            ctx.loop(model, labelled, phase="head", epochs=hp["head_epochs"], lr=hp["head_lr"],
                     batch_size=hp["batch_size"], params=list(model.head.parameters()))
            for p in model.extractor.parameters():
                p.requires_grad_(True)
        ctx.details["labels_used"] = len(labelled)
        return model
