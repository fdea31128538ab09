#!/usr/bin/python3
"""Golden values for io.diffquant.engine.metrics.ImageMetrics (SSIM, MSE, PSNR).

Independent re-implementation, in numpy float64, of the SSIM definition the engine follows:
scikit-image's structural_similarity(x, y, data_range=R, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, channel_axis=0) = pytorch-msssim's ssim(win_size=11, win_sigma=1.5, K=(0.01, 0.03)).

Two routes are computed and must agree to 1e-12:
  1. the scikit-image route: filter the whole image with a Gaussian (radius int(3.5 * 1.5 + 0.5) = 5, scipy's
     'reflect' boundary = numpy's 'symmetric' padding), form the SSIM map, crop 5 pixels on each side, take the mean;
  2. the pytorch-msssim route: 'valid' conv2d with the 11-tap separable kernel in torch float64 (if torch is
     importable).
Images come from a 64-bit LCG so that ImageMetricsTest can rebuild them bit for bit. The printed numbers are
pasted into engine/src/test/java/io/diffquant/engine/metrics/ImageMetricsTest.java.

Run: /usr/bin/python3 tools/golden/ssim_reference.py
"""
import numpy as np

MASK64 = (1 << 64) - 1


class Lcg:
    """Knuth's MMIX LCG; next_int(m) = (state >> 33) % m (ImageMetricsTest.Lcg does the same)."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_int(self, m):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK64
        return (self.state >> 33) % m


def make_pair(seed, c, h, w, noise):
    """Integer images 0..255: a = diagonal ramp + uniform noise 0..63; b = a + uniform noise in [-noise, noise], clamped."""
    rng = Lcg(seed)
    a = np.zeros((c, h, w), dtype=np.int64)
    b = np.zeros((c, h, w), dtype=np.int64)
    for ch in range(c):
        for y in range(h):
            for x in range(w):
                a[ch, y, x] = (7 * x + 3 * y + 50 * ch + rng.next_int(64)) % 256
    for ch in range(c):
        for y in range(h):
            for x in range(w):
                v = a[ch, y, x] + rng.next_int(2 * noise + 1) - noise
                b[ch, y, x] = min(255, max(0, v))
    return a, b


def to_float(k, convention):
    """float32 images: 'signed' k/255*2-1 in [-1, 1], 'unit' k/255 in [0, 1], 'uint8' k (all via float64, then rounded)."""
    k = k.astype(np.float64)
    if convention == "signed":
        v = k / 255.0 * 2.0 - 1.0
    elif convention == "unit":
        v = k / 255.0
    else:
        v = k
    return v.astype(np.float32)


def gaussian_1d(sigma=1.5, radius=5):
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(k * k) / (2.0 * sigma * sigma))
    return g / g.sum()


def filter_full_reflect(img, g):
    """Separable Gaussian over a 2-D image with scipy.ndimage's 'reflect' boundary (numpy pad 'symmetric')."""
    r = len(g) // 2
    p = np.pad(img, r, mode="symmetric")
    h, w = img.shape
    tmp = np.zeros((h + 2 * r, w))
    for t in range(len(g)):
        tmp += g[t] * p[:, t:t + w]
    out = np.zeros((h, w))
    for t in range(len(g)):
        out += g[t] * tmp[t:t + h, :]
    return out


def ssim_channel_skimage_route(x, y, data_range):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    g = gaussian_1d()
    ux, uy = filter_full_reflect(x, g), filter_full_reflect(y, g)
    uxx, uyy, uxy = filter_full_reflect(x * x, g), filter_full_reflect(y * y, g), filter_full_reflect(x * y, g)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = 5
    return s[pad:-pad, pad:-pad].mean()


def ssim_skimage_route(a, b, data_range):
    return float(np.mean([ssim_channel_skimage_route(a[c], b[c], data_range) for c in range(a.shape[0])]))


def ssim_torch_route(a, b, data_range):
    import torch
    import torch.nn.functional as F
    x = torch.from_numpy(a.astype(np.float64))[None]
    y = torch.from_numpy(b.astype(np.float64))[None]
    c = x.shape[1]
    g = torch.from_numpy(gaussian_1d())
    wh = g.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wv = g.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def filt(t):
        return F.conv2d(F.conv2d(t, wh, groups=c), wv, groups=c)

    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx * mx, filt(y * y) - my * my, filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    s = ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * cs
    return float(s.flatten(2).mean(-1).mean())


def mse(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


CASES = [
    # name, seed, C, H, W, noise, convention, data range
    ("gray16_signed", 1, 1, 16, 16, 20, "signed", 2.0),
    ("rgb28x20_signed", 2, 3, 28, 20, 40, "signed", 2.0),
    ("gray11_signed", 3, 1, 11, 11, 10, "signed", 2.0),
    ("two32_unit", 4, 2, 32, 32, 5, "unit", 1.0),
    ("gray24_uint8", 5, 1, 24, 24, 60, "uint8", 255.0),
]


def main():
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    for name, seed, c, h, w, noise, conv, rng in CASES:
        ka, kb = make_pair(seed, c, h, w, noise)
        a, b = to_float(ka, conv), to_float(kb, conv)
        s = ssim_skimage_route(a, b, rng)
        if have_torch:
            t = ssim_torch_route(a, b, rng)
            assert abs(s - t) < 1e-12, (name, s, t)
        m = mse(a, b)
        psnr = 10.0 * np.log10(rng * rng / m)
        line = "%-16s ssim=%.17g mse=%.17g psnr=%.17g checksum=%d" % (name, s, m, psnr, int(ka.sum() + 3 * kb.sum()))
        if conv == "signed":
            # ImageMetrics.ssimSigned: the [-1, 1] float32 images mapped to [0, 1] in float64, data range 1
            ua, ub = (a.astype(np.float64) + 1) / 2, (b.astype(np.float64) + 1) / 2
            su = ssim_skimage_route(ua, ub, 1.0)
            if have_torch:
                assert abs(su - ssim_torch_route(ua, ub, 1.0)) < 1e-12
            line += " ssim_signed_as_unit=%.17g" % su
        print(line)
    print("torch cross-check:", "done" if have_torch else "skipped (no torch)")


if __name__ == "__main__":
    main()
