package io.diffquant.engine.diffusion;

import java.util.Locale;

/**
 * A discrete noise schedule and every constant the samplers need, all in double (as ADM's
 * {@code GaussianDiffusion.__init__}, openai/guided-diffusion, facebookresearch/DiT diffusion/gaussian_diffusion.py).
 * Index i runs over 0..T-1; index 0 is the least noisy step.
 */
public final class NoiseSchedule {
    /** Ho et al.'s linear betas at T = 1000 (ADM rescales them by 1000/T). */
    public static final double LINEAR_BETA_START = 1e-4, LINEAR_BETA_END = 0.02;
    /** Stable Diffusion's scaled-linear defaults (diffusers "scaled_linear"). */
    public static final double SCALED_LINEAR_BETA_START = 0.00085, SCALED_LINEAR_BETA_END = 0.012;
    /** Nichol & Dhariwal's cap on cosine betas. */
    public static final double COSINE_MAX_BETA = 0.999;

    private final String name;
    private final double[] betas;
    private final double[] alphas;
    private final double[] alphasCumprod;
    private final double[] alphasCumprodPrev;
    private final double[] sqrtRecipAlphasCumprod;
    private final double[] sqrtRecipm1AlphasCumprod;
    private final double[] posteriorVariance;
    private final double[] posteriorLogVarianceClipped;
    private final double[] posteriorMeanCoef1;
    private final double[] posteriorMeanCoef2;
    private final double[] logBetas;
    private final double[] fixedLargeVariance;
    private final double[] fixedLargeLogVariance;

    private NoiseSchedule(String name, double[] b) {
        int n = b.length;
        if (n < 1) throw new IllegalArgumentException("noise schedule '" + name + "': needs at least one timestep");
        for (int i = 0; i < n; i++) {
            if (!(b[i] > 0 && b[i] <= 1)) throw new IllegalArgumentException("noise schedule '" + name
                    + "': beta[" + i + "] = " + b[i] + " is outside (0, 1]");
        }
        this.name = name;
        this.betas = b.clone();
        alphas = new double[n];
        alphasCumprod = new double[n];
        alphasCumprodPrev = new double[n];
        sqrtRecipAlphasCumprod = new double[n];
        sqrtRecipm1AlphasCumprod = new double[n];
        posteriorVariance = new double[n];
        posteriorLogVarianceClipped = new double[n];
        posteriorMeanCoef1 = new double[n];
        posteriorMeanCoef2 = new double[n];
        logBetas = new double[n];
        fixedLargeVariance = new double[n];
        fixedLargeLogVariance = new double[n];
        double prod = 1.0;
        for (int i = 0; i < n; i++) {
            alphas[i] = 1.0 - betas[i];
            alphasCumprodPrev[i] = prod;
            prod *= alphas[i];
            alphasCumprod[i] = prod;
        }
        for (int i = 0; i < n; i++) {
            double ac = alphasCumprod[i], prev = alphasCumprodPrev[i], beta = betas[i];
            sqrtRecipAlphasCumprod[i] = Math.sqrt(1.0 / ac);
            sqrtRecipm1AlphasCumprod[i] = Math.sqrt(1.0 / ac - 1);
            posteriorVariance[i] = beta * (1.0 - prev) / (1.0 - ac);
            posteriorMeanCoef1[i] = beta * Math.sqrt(prev) / (1.0 - ac);
            posteriorMeanCoef2[i] = (1.0 - prev) * Math.sqrt(alphas[i]) / (1.0 - ac);
            logBetas[i] = Math.log(beta);
        }
        // The posterior variance is 0 at index 0: ADM clips the log by repeating index 1. With a single step ADM has
        // no value at all; we then use log(beta_0) (never used: no noise is added at index 0).
        for (int i = 0; i < n; i++) {
            int src = (i == 0 && n > 1) ? 1 : i;
            posteriorLogVarianceClipped[i] = n > 1 ? Math.log(posteriorVariance[src]) : logBetas[0];
            fixedLargeVariance[i] = i == 0 ? (n > 1 ? posteriorVariance[1] : betas[0]) : betas[i];
            fixedLargeLogVariance[i] = Math.log(fixedLargeVariance[i]);
        }
    }

    /** A schedule from explicit betas (each in (0, 1]). */
    public static NoiseSchedule fromBetas(String name, double[] betas) {
        if (betas == null) throw new IllegalArgumentException("noise schedule '" + name + "': betas are null");
        return new NoiseSchedule(name, betas);
    }

    /**
     * ADM's named "linear" schedule: betas linearly from 1e-4·(1000/T) to 0.02·(1000/T)
     * ({@code get_named_beta_schedule("linear", T)}).
     */
    public static NoiseSchedule linear(int numTimesteps) {
        requireT(numTimesteps);
        double scale = 1000.0 / numTimesteps;
        return new NoiseSchedule("linear", linspace(scale * LINEAR_BETA_START, scale * LINEAR_BETA_END, numTimesteps));
    }

    /** Betas linearly from betaStart to betaEnd (no rescaling by T; diffusers "linear"). */
    public static NoiseSchedule linear(int numTimesteps, double betaStart, double betaEnd) {
        requireT(numTimesteps);
        return new NoiseSchedule("linear", linspace(betaStart, betaEnd, numTimesteps));
    }

    /** Linear in sqrt space then squared (diffusers "scaled_linear", ADM's legacy "quad"), computed in double. */
    public static NoiseSchedule scaledLinear(int numTimesteps, double betaStart, double betaEnd) {
        requireT(numTimesteps);
        if (!(betaStart >= 0) || !(betaEnd >= 0)) throw new IllegalArgumentException(
                "scaled_linear schedule: beta_start and beta_end must be >= 0, got " + betaStart + ", " + betaEnd);
        double[] b = linspace(Math.sqrt(betaStart), Math.sqrt(betaEnd), numTimesteps);
        for (int i = 0; i < b.length; i++) b[i] = b[i] * b[i];
        return new NoiseSchedule("scaled_linear", b);
    }

    /** Nichol &amp; Dhariwal's cosine schedule (ADM "cosine" / DiT "squaredcos_cap_v2"), betas capped at 0.999. */
    public static NoiseSchedule cosine(int numTimesteps) { return cosine(numTimesteps, COSINE_MAX_BETA); }

    /** Cosine schedule with a custom beta cap ({@code betas_for_alpha_bar}). */
    public static NoiseSchedule cosine(int numTimesteps, double maxBeta) {
        requireT(numTimesteps);
        double[] b = new double[numTimesteps];
        for (int i = 0; i < numTimesteps; i++) {
            double t1 = (double) i / numTimesteps;
            double t2 = (double) (i + 1) / numTimesteps;
            b[i] = Math.min(1 - cosineAlphaBar(t2) / cosineAlphaBar(t1), maxBeta);
        }
        return new NoiseSchedule("cosine", b);
    }

    /** ᾱ(t) = cos²((t + 0.008) / 1.008 · π/2), t in [0, 1]. */
    static double cosineAlphaBar(double t) {
        double c = StrictMath.cos((t + 0.008) / 1.008 * Math.PI / 2);
        return c * c;
    }

    /**
     * A schedule by name: "linear" (ADM), "scaled_linear" / "scaled-linear" (Stable Diffusion defaults
     * 0.00085..0.012), "cosine" / "squaredcos_cap_v2".
     */
    public static NoiseSchedule named(String name, int numTimesteps) {
        if (name == null) throw new IllegalArgumentException("noise schedule name is null; expected one of "
                + "linear, scaled_linear, cosine");
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "linear" -> linear(numTimesteps);
            case "scaled_linear", "scaled-linear" ->
                    scaledLinear(numTimesteps, SCALED_LINEAR_BETA_START, SCALED_LINEAR_BETA_END);
            case "cosine", "squaredcos_cap_v2" -> cosine(numTimesteps);
            default -> throw new IllegalArgumentException("unknown noise schedule '" + name
                    + "'; expected one of linear, scaled_linear, cosine (squaredcos_cap_v2)");
        };
    }

    private static void requireT(int t) {
        if (t < 1) throw new IllegalArgumentException("number of diffusion timesteps must be >= 1, got " + t);
    }

    /** numpy.linspace(start, stop, num) bit for bit: i·step + start, the last element set to stop. */
    static double[] linspace(double start, double stop, int num) {
        double[] y = new double[num];
        int div = num - 1;
        double delta = stop - start;
        if (div > 0) {
            double step = delta / div;
            for (int i = 0; i < num; i++) y[i] = (step == 0 ? i / (double) div * delta : i * step) + start;
            y[num - 1] = stop;
        } else if (num == 1) {
            y[0] = 0 * delta + start;
        }
        return y;
    }

    public String name() { return name; }
    public int numTimesteps() { return betas.length; }

    public double beta(int i) { return betas[i]; }
    public double alphaCumprod(int i) { return alphasCumprod[i]; }
    /** ᾱ_{i-1}, with 1.0 at index 0. */
    public double alphaCumprodPrev(int i) { return alphasCumprodPrev[i]; }
    public double sqrtRecipAlphaCumprod(int i) { return sqrtRecipAlphasCumprod[i]; }
    public double sqrtRecipm1AlphaCumprod(int i) { return sqrtRecipm1AlphasCumprod[i]; }
    public double posteriorVariance(int i) { return posteriorVariance[i]; }
    public double posteriorLogVarianceClipped(int i) { return posteriorLogVarianceClipped[i]; }
    public double posteriorMeanCoef1(int i) { return posteriorMeanCoef1[i]; }
    public double posteriorMeanCoef2(int i) { return posteriorMeanCoef2[i]; }
    public double logBeta(int i) { return logBetas[i]; }
    /** ADM's FIXED_LARGE variance: β̃_1 at index 0, β_i elsewhere. */
    public double fixedLargeVariance(int i) { return fixedLargeVariance[i]; }
    public double fixedLargeLogVariance(int i) { return fixedLargeLogVariance[i]; }

    public double[] betas() { return betas.clone(); }
    public double[] alphas() { return alphas.clone(); }
    public double[] alphasCumprod() { return alphasCumprod.clone(); }
    public double[] alphasCumprodPrev() { return alphasCumprodPrev.clone(); }
    public double[] posteriorVariance() { return posteriorVariance.clone(); }
    public double[] posteriorLogVarianceClipped() { return posteriorLogVarianceClipped.clone(); }
    public double[] posteriorMeanCoef1() { return posteriorMeanCoef1.clone(); }
    public double[] posteriorMeanCoef2() { return posteriorMeanCoef2.clone(); }

    @Override public String toString() { return "NoiseSchedule[" + name + ", T=" + betas.length + "]"; }
}
