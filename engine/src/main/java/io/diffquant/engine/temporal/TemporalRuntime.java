package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.TemporalSection;

import java.util.ArrayList;
import java.util.List;

/**
 * Applies a config's {@link TemporalSection} at inference (TFMQ-DM cache-based maintenance and disturbance-aware
 * selection, ALGORITHMS.md §6): checks that the section's features are the model's, rebuilds the {@link FeatureCache}
 * and attaches {@link TemporalCacheHooks} with the selection map, removed when the quantization is detached.
 * Sections without cached features need nothing at inference (TIAR and FSC are ordinary parameters).
 */
public final class TemporalRuntime {
    private TemporalRuntime() {}

    /** The cache of a section for a model (null when the section has none). */
    public static FeatureCache cache(DiffusionModel model, TemporalSection s) {
        if (s == null || s.cached() == null) return null;
        TemporalInfoBlock tib = TemporalInfoBlock.of(model);
        checkFeatures(tib, s);
        TemporalSection.CachedFeatures c = s.cached();
        return FeatureCache.of(tib, s.timesteps(), s.labels(), c.format(), FeatureCache.CacheGranularity.parse(c.granularity()), c.range(), c.tensors());
    }

    /** Checks a section against a model: its features are the model's TIB features and its cache fits them. */
    public static void check(DiffusionModel model, TemporalSection s) {
        checkFeatures(TemporalInfoBlock.of(model), s);
        cache(model, s);
    }

    /** Attaches the cache hooks of a section to the quantized model (detached with it); null when there is no cache. */
    public static TemporalCacheHooks attach(QuantizedModel q, TemporalSection s) {
        FeatureCache cache = cache(q.model(), s);
        if (cache == null) return null;
        TemporalCacheHooks h = TemporalCacheHooks.attach(q.model(), cache, s.selectionMap());
        q.onDetach(h::detach);
        return h;
    }

    /** The section of a TIB with the given switches, cache and selection map. */
    public static TemporalSection section(TemporalInfoBlock tib, boolean tiar, boolean fsc, String fscScope, boolean cacheOn, boolean selectionOn,
                                          float[] timesteps, int[] labels, FeatureCache cache, boolean[][] selectionMap) {
        List<TemporalSection.FeatureRef> refs = new ArrayList<>();
        for (TemporalInfoBlock.Feature f : tib.features()) refs.add(new TemporalSection.FeatureRef(f.name(), f.layer(), f.width()));
        TemporalSection.CachedFeatures c = cache == null ? null
                : new TemporalSection.CachedFeatures(cache.format(), cache.granularity().id(), cache.range(), cache.features());
        return new TemporalSection(tiar, fsc, fscScope, cacheOn, selectionOn, timesteps, labels, refs, c, selectionMap);
    }

    static void checkFeatures(TemporalInfoBlock tib, TemporalSection s) {
        List<TemporalSection.FeatureRef> f = s.features();
        if (f.size() != tib.features().size()) throw new IllegalArgumentException("temporal section: " + f.size() + " features, the model's TIB has "
                + tib.features().size());
        for (TemporalInfoBlock.Feature m : tib.features()) {
            TemporalSection.FeatureRef r = f.get(m.index());
            if (!r.name().equals(m.name()) || !r.layer().equals(m.layer()) || r.width() != m.width())
                throw new IllegalArgumentException("temporal section: feature " + m.index() + " is " + r.name() + " (" + r.layer() + ", width "
                        + r.width() + "), the model has " + m.name() + " (" + m.layer() + ", width " + m.width() + ")");
        }
    }
}
