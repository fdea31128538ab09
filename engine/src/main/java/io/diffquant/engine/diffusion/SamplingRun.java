package io.diffquant.engine.diffusion;

import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.CancellationException;

/**
 * A pull-based reverse-diffusion run: each {@link #next()} makes exactly one model call and one DDPM or DDIM step
 * (ADM's p_sample_loop_progressive / ddim_sample_loop_progressive, facebookresearch/DiT
 * diffusion/gaussian_diffusion.py). Runs over the respaced indices in descending order; the model always receives the
 * ORIGINAL timestep value. Constants are double and cast to float32 per step, every tensor op is float32 in ADM's
 * operation order (as {@code _extract_into_tensor}). No threads are started here.
 *
 * <p>Cancellation: {@link #cancel()} may be called from any thread; it is honoured between steps (a step in progress
 * completes and is returned). After cancellation {@link #hasNext()} is false and {@link #next()} throws
 * {@link CancellationException}.
 */
public final class SamplingRun implements Iterator<SamplingStep> {
    private static final int MIN_CHUNK = 1 << 14;

    private final Sampler sampler;
    private final SampleRequest req;
    private final RespacedSchedule rs;
    private final NoiseSchedule sp;
    private final SeededNoise noise;
    private final Tensor initialNoise;
    private final int n, c, h, w, outC, plane, per;
    private final int[] condLabels;
    private volatile boolean cancelled;
    private int done;
    private Tensor x;

    SamplingRun(Sampler sampler, SampleRequest request) {
        if (sampler == null) throw new IllegalArgumentException("sampler is null");
        if (request == null) throw new IllegalArgumentException("sample request is null");
        this.sampler = sampler;
        this.req = request;
        this.rs = Respacing.respace(request.schedule(), request.respacing());
        this.sp = rs.spaced();
        this.noise = new SeededNoise(request.seed());
        int[] s = request.shape();
        n = s[0]; c = s[1]; h = s[2]; w = s[3];
        outC = request.modelOutChannels();
        plane = h * w;
        per = c * plane;
        if (request.initialNoise() != null) {
            initialNoise = request.initialNoise().copy();
        } else {
            initialNoise = noise.normal(SeededNoise.STREAM_INITIAL, request.firstSampleIndex(), SeededNoise.INITIAL_STEP_KEY, s);
        }
        x = initialNoise.copy();
        int[] y = request.labels();
        if (request.guidance() != null) {
            int[] yy = Arrays.copyOf(y, 2 * n);
            Arrays.fill(yy, n, 2 * n, request.guidance().nullClass());
            condLabels = yy;
        } else {
            condLabels = y;
        }
    }

    public Sampler sampler() { return sampler; }
    /**
     * How the denoiser computes (issue 7: every result says whether it came from fake quantization or real low-bit
     * kernels): read from the request's denoiser when asked, see {@link ExecutionInfo#of(io.diffquant.engine.model.Denoiser)}.
     */
    public ExecutionInfo execution() { return ExecutionInfo.of(req.denoiser()); }
    public SampleRequest request() { return req; }
    public RespacedSchedule schedule() { return rs; }
    public int totalSteps() { return rs.size(); }
    public int stepsDone() { return done; }
    public boolean isDone() { return done == rs.size(); }
    public boolean isCancelled() { return cancelled; }
    /** Stops the run before its next step (thread-safe). */
    public void cancel() { cancelled = true; }

    /** x_T as drawn (or given); never mutated. */
    public Tensor initialNoise() { return initialNoise; }
    /** The current x (x_T before the first step, the final sample after the last). */
    public Tensor current() { return x; }

    /** The final samples; throws if the run has not finished. */
    public Tensor result() {
        if (!isDone()) throw new IllegalStateException("sampling run has done " + done + " of " + rs.size() + " steps"
                + (cancelled ? " and was cancelled" : ""));
        return x;
    }

    /** ORIGINAL timestep value of each step in sampling order (descending). */
    public int[] timestepsInOrder() {
        int k = rs.size();
        int[] out = new int[k];
        for (int i = 0; i < k; i++) out[i] = rs.timestep(k - 1 - i);
        return out;
    }

    @Override public boolean hasNext() { return !cancelled && done < rs.size(); }

    @Override public SamplingStep next() {
        if (cancelled) throw new CancellationException("sampling run cancelled after " + done + " of " + rs.size() + " steps");
        if (done >= rs.size()) throw new NoSuchElementException("sampling run finished (" + rs.size() + " steps)");
        int stepIndex = done;
        int k = rs.size() - 1 - stepIndex;   // respaced index
        int t = rs.timestep(k);              // ORIGINAL timestep value

        Tensor modelOut = callModel(t, stepIndex);

        // x̂_0 = sqrt(1/ᾱ) x - sqrt(1/ᾱ - 1) eps  (float32, ADM _predict_xstart_from_eps)
        float ra = (float) sp.sqrtRecipAlphaCumprod(k);
        float rm1 = (float) sp.sqrtRecipm1AlphaCumprod(k);
        boolean clip = req.clipDenoised();
        float[] xd = x.data(), md = modelOut.data();
        Tensor x0 = Tensor.zeros(n, c, h, w);
        float[] x0d = x0.data();
        int total = n * per;
        Parallel.forRange(total, MIN_CHUNK, (from, to) -> {
            for (int j = from; j < to; j++) {
                float e = md[epsOffset(j)];
                float v = ra * xd[j] - rm1 * e;
                if (clip) v = Math.max(-1f, Math.min(1f, v));
                x0d[j] = v;
            }
        });

        Tensor next = sampler instanceof DdimSampler d ? ddimStep(k, t, x0, d.eta()) : ddpmStep(k, t, x0, modelOut);
        x = next;
        done++;
        return new SamplingStep(stepIndex, rs.size(), t, next, x0, modelOut);
    }

    /** Calls the denoiser at original timestep t (batch doubled for CFG) and returns [N, outC, H, W]. */
    private Tensor callModel(int t, int stepIndex) {
        Guidance g = req.guidance();
        int b = g != null ? 2 * n : n;
        Tensor in = g != null ? Tensor.concatRows(x, x) : x.copy();
        float[] ts = new float[b];
        Arrays.fill(ts, (float) t);
        Tensor out = req.denoiser().forward(in, ts, condLabels == null ? null : condLabels.clone());
        if (out == null) throw new IllegalStateException("denoiser returned null at step " + stepIndex + " (t=" + t + ")");
        int[] expected = {b, outC, h, w};
        if (!Arrays.equals(out.shape(), expected)) {
            throw new IllegalStateException("denoiser output at step " + stepIndex + " (t=" + t + "): expected shape "
                    + Arrays.toString(expected) + (req.learnSigma() ? " (learnSigma: 2C channels [eps, v])" : " (C eps channels)")
                    + " but got " + Arrays.toString(out.shape()));
        }
        if (!out.allFinite()) throw new IllegalStateException("denoiser output at step " + stepIndex + " (t=" + t
                + ") contains NaN or infinite values");
        return g != null ? Guidance.combine(out, c, g.scale(), g.mode()) : out;
    }

    /** Offset of eps for element j (flat index into [N, C, H, W]) within the [N, outC, H, W] model output. */
    private int epsOffset(int j) {
        int i = j / per;
        return i * outC * plane + (j - i * per);
    }

    /** ADM ddim_sample: eps re-derived from x̂_0, x' = sqrt(ᾱ') x̂_0 + sqrt(1 - ᾱ' - σ²) eps' + σ z. */
    private Tensor ddimStep(int k, int t, Tensor x0, double eta) {
        float ra = (float) sp.sqrtRecipAlphaCumprod(k);
        float rm1 = (float) sp.sqrtRecipm1AlphaCumprod(k);
        float ab = (float) sp.alphaCumprod(k);
        float abp = (float) sp.alphaCumprodPrev(k);
        float sigma = (float) eta * (float) Math.sqrt((1f - abp) / (1f - ab)) * (float) Math.sqrt(1f - ab / abp);
        float sqrtAbp = (float) Math.sqrt(abp);
        float dirCoef = (float) Math.sqrt(1f - abp - sigma * sigma);
        boolean addNoise = k != 0 && sigma != 0f;
        float[] z = addNoise ? noise.normal(SeededNoise.STREAM_STEP, req.firstSampleIndex(), t, n, c, h, w).data() : null;
        float[] xd = x.data(), x0d = x0.data();
        Tensor out = Tensor.zeros(n, c, h, w);
        float[] od = out.data();
        Parallel.forRange(n * per, MIN_CHUNK, (from, to) -> {
            for (int j = from; j < to; j++) {
                float p = x0d[j];
                float eps = (ra * xd[j] - p) / rm1;
                float v = p * sqrtAbp + dirCoef * eps;
                if (addNoise) v = v + sigma * z[j];
                od[j] = v;
            }
        });
        return out;
    }

    /** ADM p_sample: x' = μ̃(x, x̂_0) + exp(½ log σ²) z, learned-range or fixed variance, no noise at index 0. */
    private Tensor ddpmStep(int k, int t, Tensor x0, Tensor modelOut) {
        float c1 = (float) sp.posteriorMeanCoef1(k);
        float c2 = (float) sp.posteriorMeanCoef2(k);
        boolean addNoise = k != 0;
        boolean learned = req.learnSigma();
        float minLog = (float) sp.posteriorLogVarianceClipped(k);
        float maxLog = (float) sp.logBeta(k);
        float fixedLog = (float) (req.fixedVariance() == VarianceType.FIXED_SMALL
                ? sp.posteriorLogVarianceClipped(k) : sp.fixedLargeLogVariance(k));
        float fixedStd = (float) StrictMath.exp(0.5f * fixedLog);
        float[] z = addNoise ? noise.normal(SeededNoise.STREAM_STEP, req.firstSampleIndex(), t, n, c, h, w).data() : null;
        float[] xd = x.data(), x0d = x0.data(), md = modelOut.data();
        Tensor out = Tensor.zeros(n, c, h, w);
        float[] od = out.data();
        Parallel.forRange(n * per, MIN_CHUNK, (from, to) -> {
            for (int j = from; j < to; j++) {
                float mean = c1 * x0d[j] + c2 * xd[j];
                if (addNoise) {
                    float std;
                    if (learned) {
                        float v = md[epsOffset(j) + per];
                        float frac = (v + 1f) / 2f;
                        float logVar = frac * maxLog + (1f - frac) * minLog;
                        std = (float) StrictMath.exp(0.5f * logVar);
                    } else {
                        std = fixedStd;
                    }
                    mean = mean + std * z[j];
                }
                od[j] = mean;
            }
        });
        return out;
    }
}
