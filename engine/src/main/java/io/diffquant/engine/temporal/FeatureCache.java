package io.diffquant.engine.temporal;

import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.format.RangeEstimator;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * TFMQ's cache-based maintenance (CM; TPAMI version of TFMQ-DM, ALGORITHMS.md §6): the full-precision temporal features
 * of every sampling timestep value and label, computed offline, quantized with parameters optimised on each feature
 * vector itself and cached with them; at inference the TIB is not run and the quantized feature is looked up by
 * (t, y) ({@link TemporalCacheHooks}). Each feature i is stored as one {@link QuantizedTensor} of shape [T, Y, width]
 * in the activation layout: rows are the (t, y) pairs, so {@link CacheGranularity#TENSOR} (one parameter set per
 * feature vector, the paper) is per-token granularity and {@link CacheGranularity#CHUNK} (one set per shift / scale /
 * gate chunk) is groups of the chunk width; block formats keep their own blocks. Immutable.
 */
public final class FeatureCache {
    /** Which elements of a cached feature vector share quantization parameters. */
    public enum CacheGranularity {
        /** One set per feature vector e_i(t, y) (the paper). */
        TENSOR("tensor"),
        /** One set per chunk of the vector (DiT: shift, scale, gate; UNet scale-shift: scale, shift). */
        CHUNK("chunk");

        private final String id;
        CacheGranularity(String id) { this.id = id; }
        public String id() { return id; }

        public static CacheGranularity parse(String s) {
            if (s != null) for (CacheGranularity g : values()) if (g.id.equals(s.trim().toLowerCase(Locale.ROOT))) return g;
            throw new IllegalArgumentException("unknown cache granularity '" + s + "'; valid: tensor, chunk");
        }
    }

    private final TemporalInfoBlock tib;
    private final float[] timesteps;
    private final int[] labels;
    private final NumberFormat format;
    private final CacheGranularity granularity;
    private final String range;
    private final QuantizedTensor[] tensors;
    private final GroupView[] views;
    private final Map<Float, Integer> tIndex = new HashMap<>();

    private FeatureCache(TemporalInfoBlock tib, float[] timesteps, int[] labels, NumberFormat format, CacheGranularity granularity,
                         String range, QuantizedTensor[] tensors) {
        this.tib = tib;
        this.timesteps = timesteps;
        this.labels = labels;
        this.format = format;
        this.granularity = granularity;
        this.range = range;
        this.tensors = tensors;
        this.views = new GroupView[tensors.length];
        for (int i = 0; i < tensors.length; i++) views[i] = tensors[i].view();
        for (int i = 0; i < timesteps.length; i++) tIndex.put(timesteps[i] == 0f ? 0f : timesteps[i], i);
    }

    /** The granularity a feature is cached with. */
    public static Granularity granularityOf(TemporalInfoBlock.Feature f, NumberFormat format, CacheGranularity g) {
        if (format instanceof BlockFormat b) return b.granularity();
        return g == CacheGranularity.CHUNK && f.chunks() > 1 ? Granularity.group(f.chunkWidth()) : Granularity.TOKEN;
    }

    /**
     * Quantizes every feature vector of a full-precision table with parameters searched on the vector (or chunk) itself.
     * @param range the search, e.g. {@code RangeEstimator.LpSearch(2, 80, 0.01)} (MSE over 80 clipping candidates);
     *              block formats always use min-max
     */
    public static FeatureCache build(TemporalFeatures fp, NumberFormat format, CacheGranularity granularity, RangeEstimator range) {
        if (format == null || granularity == null || range == null) throw new IllegalArgumentException("feature cache: format, granularity and range are required");
        RangeEstimator r = format instanceof BlockFormat ? RangeEstimator.minMax() : range;
        TemporalInfoBlock tib = fp.tib();
        QuantizedTensor[] q = new QuantizedTensor[fp.featureCount()];
        for (TemporalInfoBlock.Feature f : tib.features()) {
            Granularity g = granularityOf(f, format, granularity);
            try {
                q[f.index()] = Quantizer.dynamic(format, g, Layout.ACTIVATION, r).named("cached feature " + f.name()).quantize(fp.tensor(f.index()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("feature cache: feature " + f.name() + ": " + e.getMessage(), e);
            }
        }
        return new FeatureCache(tib, fp.timesteps(), fp.labels(), format, granularity, r.id(), q);
    }

    /**
     * A cache from stored parts (a config's temporal section).
     * @throws IllegalArgumentException when a tensor does not match the TIB, the axes, the format or the granularity
     */
    public static FeatureCache of(TemporalInfoBlock tib, float[] timesteps, int[] labels, NumberFormat format, CacheGranularity granularity,
                                  String range, List<QuantizedTensor> tensors) {
        float[] ts = TemporalFeatures.checkTimesteps(timesteps);
        int[] ys = TemporalFeatures.checkLabels(tib, labels);
        int ny = ys == null ? 1 : ys.length;
        if (tensors == null || tensors.size() != tib.features().size()) throw new IllegalArgumentException("feature cache: expected "
                + tib.features().size() + " cached features, got " + (tensors == null ? "none" : tensors.size()));
        QuantizedTensor[] q = new QuantizedTensor[tensors.size()];
        for (TemporalInfoBlock.Feature f : tib.features()) {
            QuantizedTensor t = tensors.get(f.index());
            int[] want = {ts.length, ny, f.width()};
            if (!Arrays.equals(t.shape(), want)) throw new IllegalArgumentException("feature cache: feature " + f.name() + " has shape "
                    + Arrays.toString(t.shape()) + ", expected " + Arrays.toString(want) + " (timesteps, labels, width)");
            if (!t.format().equals(format)) throw new IllegalArgumentException("feature cache: feature " + f.name() + " is " + t.format().id()
                    + ", the cache is " + format.id());
            Granularity g = granularityOf(f, format, granularity);
            if (!t.granularity().equals(g)) throw new IllegalArgumentException("feature cache: feature " + f.name() + " has granularity "
                    + t.granularity().id() + ", cache granularity " + granularity.id() + " means " + g.id());
            q[f.index()] = t;
        }
        return new FeatureCache(tib, ts, ys, format, granularity, range, q);
    }

    public TemporalInfoBlock tib() { return tib; }
    public float[] timesteps() { return timesteps.clone(); }
    /** Labels, or null for unconditional models. */
    public int[] labels() { return labels == null ? null : labels.clone(); }
    public NumberFormat format() { return format; }
    public CacheGranularity granularity() { return granularity; }
    /** Id of the range search the parameters came from. */
    public String range() { return range; }
    /** The cached codes and parameters of feature i, shape [T, Y, width]. */
    public QuantizedTensor feature(int i) { return tensors[i]; }
    public List<QuantizedTensor> features() { return List.of(tensors); }

    /** Index of a timestep value, or -1. */
    public int indexOfT(float t) {
        Integer i = tIndex.get(t == 0f ? 0f : t);
        return i == null ? -1 : i;
    }

    /** Index of a label (0 for unconditional models), or -1. */
    public int indexOfY(int y) {
        if (labels == null) return 0;
        for (int i = 0; i < labels.length; i++) if (labels[i] == y) return i;
        return -1;
    }

    public int labelCount() { return labels == null ? 1 : labels.length; }

    /** Decodes ê_i(t, y) (indices) into dst[dstOff, dstOff + width). */
    public void decode(int feature, int ti, int yi, float[] dst, int dstOff) {
        QuantizedTensor q = tensors[feature];
        GroupView v = views[feature];
        int row = ti * labelCount() + yi, cols = v.cols();
        for (int s = 0; s < v.segmentsPerRow(); s++) {
            int start = v.segmentStart(s);
            format.decode(q.codes(), row * cols + start, dst, dstOff + start, v.segmentLength(s), q.params(), v.group(row, s));
        }
    }

    /** The dequantized table (what the cached path feeds the network). */
    public TemporalFeatures dequantized() {
        float[][] d = new float[tensors.length][];
        for (int i = 0; i < tensors.length; i++) d[i] = Quantizer.dequantize(tensors[i]).data();
        return TemporalFeatures.wrap(tib, timesteps, labels, d);
    }

    /**
     * Bytes of the cache as stored: packed codes (code bits per element) plus the per-group parameters (scale and zero
     * point bits as the format counts them, {@link NumberFormat#averageBits(long, long)}).
     */
    public long bytes() {
        double bits = 0;
        for (QuantizedTensor q : tensors) bits += format.averageBits(q.size(), q.params().groups()) * q.size();
        return (long) Math.ceil(bits / 8);
    }

    /** Bytes of the same table in float32. */
    public long fpBytes() {
        long n = 0;
        for (QuantizedTensor q : tensors) n += q.size();
        return 4 * n;
    }

    /** Human description for messages. */
    public String describe() {
        return String.format(Locale.ROOT, "%d features x %d timesteps x %d labels, %s/%s, %.1f KiB (FP32 %.1f KiB)", tensors.length,
                timesteps.length, labelCount(), format.id(), granularity.id(), bytes() / 1024.0, fpBytes() / 1024.0);
    }

    /** Error for a timestep that is not cached. */
    IllegalArgumentException notCached(float t) {
        List<String> s = new ArrayList<>();
        for (int i = 0; i < Math.min(6, timesteps.length); i++) s.add(QuantizedModel.timestepLabel(timesteps[i]));
        return new IllegalArgumentException("cached temporal features: timestep t = " + QuantizedModel.timestepLabel(t)
                + " is not cached (cached: " + String.join(", ", s) + (timesteps.length > 6 ? ", ... " + timesteps.length + " values" : "")
                + "); sample with the sampler and step count used for calibration");
    }
}
