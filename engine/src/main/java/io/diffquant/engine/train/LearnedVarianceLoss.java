package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * The variational-bound term L_vlb of Nichol and Dhariwal's hybrid loss ("Improved Denoising Diffusion
 * Probabilistic Models", 2021; openai/improved-diffusion and facebookresearch/DiT gaussian_diffusion.py
 * {@code _vb_terms_bpd}), with the stop-gradient on the mean: the predicted epsilon enters as a constant, so the
 * term trains only the variance channels v.
 *
 * <p>Per sample i at timestep t (index into the schedule), in bits per dimension:
 * <ul>
 *   <li>model log-variance: frac = (v + 1) / 2, log σ² = frac log β_t + (1 - frac) log β̃_t (β̃ clipped at t = 0);</li>
 *   <li>model mean: x̂_0 = sqrt(1/ᾱ_t) x_t - sqrt(1/ᾱ_t - 1) ε̂ (no clipping), μ = c1_t x̂_0 + c2_t x_t;</li>
 *   <li>t > 0: mean over dimensions of KL(q(x_{t-1} | x_t, x_0) || N(μ, σ²)) / ln 2;</li>
 *   <li>t = 0: mean over dimensions of -log of the discretised Gaussian likelihood of x_0 (bins of 2/255, the
 *       tanh approximation of the normal CDF, log clamped at 1e-12, edge bins open) / ln 2.</li>
 * </ul>
 * The result is the mean over the batch (DiT adds it with weight 1 to the epsilon MSE). Computed in double; the
 * gradient is exact for that computation (zero where a clamp is active).
 */
public final class LearnedVarianceLoss {
    private LearnedVarianceLoss() {}

    private static final double LN2 = Math.log(2.0);
    private static final double CDF_K = Math.sqrt(2.0 / Math.PI);

    /**
     * @param epsPred predicted noise [B, ...] (treated as a constant: stop-gradient on the mean)
     * @param v       variance interpolation output [B, ...] (receives the gradient)
     * @param x0      clean images [B, ...] in [-1, 1]
     * @param xt      noisy inputs [B, ...]
     * @param t       schedule index per sample
     * @return scalar tensor: mean over the batch of the per-sample term (bits per dimension)
     */
    public static Tensor loss(Tensor epsPred, Tensor v, Tensor x0, Tensor xt, int[] t, NoiseSchedule s) {
        int b = t.length;
        for (Tensor x : new Tensor[] {epsPred, v, x0, xt}) {
            if (!x.sameShape(x0) || x.dim(0) != b) throw new IllegalArgumentException("LearnedVarianceLoss: tensors must all be "
                    + Arrays.toString(x0.shape()) + " with " + b + " samples, got " + Arrays.toString(x.shape()));
        }
        int d = x0.size() / b;
        float[] ep = epsPred.data(), vd = v.data(), x0d = x0.data(), xtd = xt.data();
        double[] perSample = new double[b];
        float[] grad = new float[vd.length]; // d(loss)/dv for a unit output gradient
        for (int i = 0; i < b; i++) {
            int ti = t[i];
            if (ti < 0 || ti >= s.numTimesteps()) throw new IllegalArgumentException(
                    "LearnedVarianceLoss: timestep " + ti + " outside [0, " + s.numTimesteps() + ")");
            double minLog = s.posteriorLogVarianceClipped(ti), maxLog = s.logBeta(ti);
            double rA = s.sqrtRecipAlphaCumprod(ti), rB = s.sqrtRecipm1AlphaCumprod(ti);
            double c1 = s.posteriorMeanCoef1(ti), c2 = s.posteriorMeanCoef2(ti);
            double dLogVarDv = 0.5 * (maxLog - minLog);
            double sum = 0;
            double scale = 1.0 / ((double) d * LN2 * b);
            for (int j = 0; j < d; j++) {
                int k = i * d + j;
                double logVar = (vd[k] + 1.0) * 0.5 * maxLog + (1.0 - (vd[k] + 1.0) * 0.5) * minLog;
                double x0Pred = rA * xtd[k] - rB * ep[k];
                double mean = c1 * x0Pred + c2 * xtd[k];
                double term, dTermDLogVar;
                if (ti == 0) {
                    double[] r = decoderNll(x0d[k], mean, 0.5 * logVar);
                    term = r[0];
                    dTermDLogVar = 0.5 * r[1];
                } else {
                    double trueMean = c1 * x0d[k] + c2 * xtd[k];
                    double trueLogVar = minLog;
                    double diff = trueMean - mean;
                    double e1 = Math.exp(trueLogVar - logVar), e2 = diff * diff * Math.exp(-logVar);
                    term = 0.5 * (-1.0 + logVar - trueLogVar + e1 + e2);
                    dTermDLogVar = 0.5 * (1.0 - e1 - e2);
                }
                sum += term;
                grad[k] = (float) (dTermDLogVar * dLogVarDv * scale);
            }
            perSample[i] = sum / d / LN2;
        }
        double total = 0;
        for (double p : perSample) total += p;
        Tensor out = Tensor.scalar((float) (total / b));
        Tape tape = Tape.active();
        if (tape != null) tape.record("learnedVarianceVlb", out, (gy, g) -> {
            float[] gv = g.of(v);
            if (gv == null) return;
            float k = gy[0];
            for (int i = 0; i < gv.length; i++) gv[i] += k * grad[i];
        }, v);
        return out;
    }

    /** Approximate standard normal CDF 0.5 (1 + tanh(sqrt(2/pi)(u + 0.044715 u^3))) and its derivative. */
    private static double cdf(double u) { return 0.5 * (1.0 + Math.tanh(CDF_K * (u + 0.044715 * u * u * u))); }

    private static double cdfGrad(double u) {
        double th = Math.tanh(CDF_K * (u + 0.044715 * u * u * u));
        return 0.5 * (1.0 - th * th) * CDF_K * (1.0 + 3 * 0.044715 * u * u);
    }

    /** {-log p(x | mean, exp(logScale)) over the bin of x, d(-log p)/d logScale}. */
    static double[] decoderNll(double x, double mean, double logScale) {
        double c = x - mean, inv = Math.exp(-logScale);
        double plus = inv * (c + 1.0 / 255.0), minus = inv * (c - 1.0 / 255.0);
        double cdfPlus = cdf(plus), cdfMin = cdf(minus);
        // d plus / d logScale = -plus (and likewise for minus)
        double logP, dLogP;
        if (x < -0.999) {
            double p = Math.max(cdfPlus, 1e-12);
            logP = Math.log(p);
            dLogP = cdfPlus > 1e-12 ? cdfGrad(plus) * -plus / cdfPlus : 0.0;
        } else if (x > 0.999) {
            double q = 1.0 - cdfMin;
            logP = Math.log(Math.max(q, 1e-12));
            dLogP = q > 1e-12 ? -cdfGrad(minus) * -minus / q : 0.0;
        } else {
            double delta = cdfPlus - cdfMin;
            logP = Math.log(Math.max(delta, 1e-12));
            dLogP = delta > 1e-12 ? (cdfGrad(plus) * -plus - cdfGrad(minus) * -minus) / delta : 0.0;
        }
        return new double[] {-logP, -dLogP};
    }
}
