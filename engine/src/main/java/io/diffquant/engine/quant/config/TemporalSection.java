package io.diffquant.engine.quant.config;

import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantizedTensor;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The {@code temporal} section of a quantization config (docs/config-format.md, section version {@value #VERSION}): what
 * TFMQ's temporal feature maintenance did (TFMQ-DM, Huang et al., CVPR 2024 / TPAMI; ALGORITHMS.md §6) and the data
 * inference needs: the switches (TIAR, FSC and its scope, cache-based maintenance, disturbance-aware selection), the
 * sampling timestep values and labels the temporal features were tabulated for, the features (consuming block,
 * producing layer, width), the cached quantized features with their parameters (one {@link QuantizedTensor} of shape
 * [timesteps, labels, width] per feature; the codes live in a sidecar file) and the selection map
 * ({@code selectionMap[i][t]} true = feature i at timestep index t comes from the cache, false = from the TIB).
 * TIAR's learned rounding and FSC's per-timestep parameters are ordinary {@code params} of the config.
 *
 * @param fscScope     "tib" (TIB activations only, the paper) or "all" (every activation quantizer, the authors' code)
 * @param timesteps    sampling timestep values (descending as sampled); may be empty when nothing was tabulated
 * @param labels       labels of the tables, null for unconditional models
 * @param cached       the cache, or null when cache-based maintenance is off
 * @param selectionMap [feature][timestep] (true = cache), or null when selection is off (then a cache serves every
 *                     feature)
 */
public record TemporalSection(boolean tiar, boolean fsc, String fscScope, boolean cache, boolean selection, float[] timesteps,
                              int[] labels, List<FeatureRef> features, CachedFeatures cached, boolean[][] selectionMap) {
    public static final int VERSION = 1;

    /** A temporal feature: the consuming block's name, the producing layer, the vector width. */
    public record FeatureRef(String name, String layer, int width) {
        public FeatureRef {
            if (name == null || name.isBlank() || layer == null || layer.isBlank()) throw new IllegalArgumentException("temporal feature needs a name and a layer");
            if (width < 1) throw new IllegalArgumentException("temporal feature " + name + ": width must be >= 1, got " + width);
        }
    }

    /**
     * The cached quantized features.
     * @param granularity "tensor" (one parameter set per feature vector) or "chunk" (per shift / scale / gate chunk)
     * @param range       the id of the range search the parameters came from
     * @param tensors     one per feature, in feature order, shape [timesteps, labels (1 if unconditional), width]
     */
    public record CachedFeatures(NumberFormat format, String granularity, String range, List<QuantizedTensor> tensors) {
        public CachedFeatures {
            if (format == null) throw new IllegalArgumentException("cached features need a format");
            if (!"tensor".equals(granularity) && !"chunk".equals(granularity))
                throw new IllegalArgumentException("cached features: granularity must be \"tensor\" or \"chunk\", got \"" + granularity + "\"");
            if (range == null || range.isBlank()) throw new IllegalArgumentException("cached features need the range id");
            tensors = List.copyOf(tensors);
        }

        /** Stored bytes: packed codes plus per-group parameters. */
        public long bytes() {
            double bits = 0;
            for (QuantizedTensor t : tensors) bits += t.storageBits();
            return (long) Math.ceil(bits / 8);
        }

        @Override public boolean equals(Object o) {
            if (!(o instanceof CachedFeatures c) || !c.format.equals(format) || !c.granularity.equals(granularity) || !c.range.equals(range)
                    || c.tensors.size() != tensors.size()) return false;
            for (int i = 0; i < tensors.size(); i++) if (!same(tensors.get(i), c.tensors.get(i))) return false;
            return true;
        }

        @Override public int hashCode() { return Objects.hash(format, granularity, range, tensors.size()); }

        private static boolean same(QuantizedTensor a, QuantizedTensor b) {
            return a.format().equals(b.format()) && a.granularity().equals(b.granularity()) && a.layout() == b.layout()
                    && Arrays.equals(a.shape(), b.shape()) && Arrays.equals(a.codes(), b.codes()) && a.params().equals(b.params());
        }
    }

    public TemporalSection {
        if (!"tib".equals(fscScope) && !"all".equals(fscScope))
            throw new IllegalArgumentException("fsc_scope must be \"tib\" or \"all\", got \"" + fscScope + "\"");
        timesteps = timesteps == null ? new float[0] : timesteps.clone();
        labels = labels == null ? null : labels.clone();
        features = features == null ? List.of() : List.copyOf(features);
        if (cached != null) {
            if (cached.tensors().size() != features.size()) throw new IllegalArgumentException("cached features: " + cached.tensors().size()
                    + " tensors for " + features.size() + " features");
            int ny = labels == null ? 1 : labels.length;
            for (int i = 0; i < features.size(); i++) {
                int[] want = {timesteps.length, ny, features.get(i).width()};
                if (!Arrays.equals(cached.tensors().get(i).shape(), want)) throw new IllegalArgumentException("cached feature "
                        + features.get(i).name() + ": shape " + Arrays.toString(cached.tensors().get(i).shape()) + ", expected " + Arrays.toString(want));
            }
        }
        if (selectionMap != null) {
            if (cached == null) throw new IllegalArgumentException("a selection map needs the cached features");
            if (selectionMap.length != features.size()) throw new IllegalArgumentException("selection map: " + selectionMap.length
                    + " rows for " + features.size() + " features");
            boolean[][] copy = new boolean[selectionMap.length][];
            for (int i = 0; i < copy.length; i++) {
                if (selectionMap[i] == null || selectionMap[i].length != timesteps.length) throw new IllegalArgumentException("selection map: feature "
                        + features.get(i).name() + " needs " + timesteps.length + " entries");
                copy[i] = selectionMap[i].clone();
            }
            selectionMap = copy;
        }
    }

    @Override public float[] timesteps() { return timesteps.clone(); }
    @Override public int[] labels() { return labels == null ? null : labels.clone(); }

    @Override public boolean[][] selectionMap() {
        if (selectionMap == null) return null;
        boolean[][] c = new boolean[selectionMap.length][];
        for (int i = 0; i < c.length; i++) c[i] = selectionMap[i].clone();
        return c;
    }

    /** How many (feature, timestep) entries use the cache (all of them without a selection map; 0 without a cache). */
    public int cachedEntries() {
        if (cached == null) return 0;
        if (selectionMap == null) return features.size() * timesteps.length;
        int n = 0;
        for (boolean[] r : selectionMap) for (boolean b : r) if (b) n++;
        return n;
    }

    @Override public boolean equals(Object o) {
        return o instanceof TemporalSection s && s.tiar == tiar && s.fsc == fsc && s.fscScope.equals(fscScope) && s.cache == cache
                && s.selection == selection && Arrays.equals(s.timesteps, timesteps) && Arrays.equals(s.labels, labels)
                && s.features.equals(features) && Objects.equals(s.cached, cached) && Arrays.deepEquals(s.selectionMap, selectionMap);
    }

    @Override public int hashCode() {
        return Objects.hash(tiar, fsc, fscScope, cache, selection, Arrays.hashCode(timesteps), features, cached);
    }

    @Override public String toString() {
        return "TemporalSection[tiar=" + tiar + ", fsc=" + fsc + " (" + fscScope + "), cache=" + cache + ", selection=" + selection
                + ", " + features.size() + " features x " + timesteps.length + " timesteps" + (cached == null ? "" : ", cache " + cached.bytes() + " bytes") + "]";
    }
}
