#!/usr/bin/env python3
"""Reference numbers for the trainer tests (engine/src/test/java/io/diffquant/engine/train/GoldenTrainTest.java).

Run with Debian's python (PyTorch 1.13 CPU):  /usr/bin/python3 tools/train/golden_train.py
It prints Java array literals to paste into the test. Two references:
 1. torch.optim.AdamW on a small float32 vector for three steps with given gradients.
 2. The learned-variance VLB term of ADM/DiT (gaussian_diffusion.py _vb_terms_bpd with the model mean frozen),
    written here from the formulas in float64 with torch autograd for d(term)/dv.
"""
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def jarr(xs, fmt="%.9g"):
    return "{" + ", ".join((fmt % float(x)) + ("f" if fmt == "%.9g" else "") for x in xs) + "}"


# ---------------------------------------------------------------- 1. AdamW
p = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0], dtype=torch.float32, requires_grad=True)
opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
grads = [[0.1, -0.2, 0.3, 0.0, 1.5], [-0.05, 0.4, 0.3, 1e-3, -2.0], [0.2, 0.2, -0.7, 0.0, 0.1]]
print("// AdamW lr 0.01 betas (0.9, 0.999) eps 1e-8 wd 0.1, torch", torch.__version__)
for g in grads:
    p.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
    print("adam step ->", jarr(p.detach().numpy()))

# ---------------------------------------------------------------- 2. learned-variance VLB
T = 1000
betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
alphas = 1.0 - betas
ac = np.cumprod(alphas)
ac_prev = np.append(1.0, ac[:-1])
post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
post_logvar_clipped = np.log(np.append(post_var[1], post_var[1:]))
coef1 = betas * np.sqrt(ac_prev) / (1.0 - ac)
coef2 = (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)


def normal_kl(m1, lv1, m2, lv2):
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def approx_cdf(x):
    return 0.5 * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * torch.pow(x, 3))))


def disc_loglik(x, means, log_scales):
    centered = x - means
    inv = torch.exp(-log_scales)
    cdf_plus = approx_cdf(inv * (centered + 1.0 / 255.0))
    cdf_min = approx_cdf(inv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))))


ts = [0, 7, 500]
B, D = len(ts), 6
x0 = torch.tensor([[-1.0, 1.0, 2 * 100 / 255 - 1, 2 * 200 / 255 - 1, 2 * 128 / 255 - 1, 2 * 3 / 255 - 1],
                   [-1.0, 1.0, 0.2, -0.4, 0.9, 2 * 77 / 255 - 1],
                   [0.5, -0.5, 0.0, 1.0, -1.0, 0.25]])
g = torch.Generator().manual_seed(0)
eps = torch.randn(B, D, generator=g)
eps_pred = eps + 0.3 * torch.randn(B, D, generator=g)
v = (0.8 * torch.randn(B, D, generator=g)).clamp(-1, 1)
# the inputs are rounded to float32 (the Java op receives float tensors)
x0, eps, eps_pred, v = (t.float().double() for t in (x0, eps, eps_pred, v))
tt = torch.tensor(ts)
sa = torch.tensor(np.sqrt(ac))[tt].float().double()[:, None]
sb = torch.tensor(np.sqrt(1 - ac))[tt].float().double()[:, None]
xt = (sa.float() * x0.float() + sb.float() * eps.float()).double()  # float32 q_sample as in the trainer
v.requires_grad_(True)
min_log = torch.tensor(post_logvar_clipped)[tt][:, None]
max_log = torch.tensor(np.log(betas))[tt][:, None]
frac = (v + 1) / 2
model_logvar = frac * max_log + (1 - frac) * min_log
x0_pred = torch.tensor(np.sqrt(1 / ac))[tt][:, None] * xt - torch.tensor(np.sqrt(1 / ac - 1))[tt][:, None] * eps_pred
model_mean = torch.tensor(coef1)[tt][:, None] * x0_pred + torch.tensor(coef2)[tt][:, None] * xt
true_mean = torch.tensor(coef1)[tt][:, None] * x0 + torch.tensor(coef2)[tt][:, None] * xt
kl = normal_kl(true_mean, min_log, model_mean, model_logvar).mean(dim=1) / np.log(2.0)
nll = -disc_loglik(x0, model_mean, 0.5 * model_logvar).mean(dim=1) / np.log(2.0)
terms = torch.where(tt == 0, nll, kl)
loss = terms.mean()
loss.backward()
print("// VLB inputs (float32 values)")
print("x0 =", jarr(x0.flatten()))
print("epsPred =", jarr(eps_pred.detach().flatten()))
print("noise =", jarr(eps.flatten()))
print("v =", jarr(v.detach().flatten()))
print("terms =", jarr(terms.detach(), "%.12g"), " loss =", "%.12g" % loss.item())
print("dLoss/dv =", jarr(v.grad.flatten(), "%.12g"))
print("xt =", jarr(xt.flatten()))
