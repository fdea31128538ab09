package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Embedding;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The inference side of TFMQ's cache-based maintenance and of disturbance-aware selection (TPAMI version of TFMQ-DM,
 * ALGORITHMS.md §6): hooks that feed the network the cached quantized temporal features instead of running the
 * Temporal Information Block.
 * <ul>
 *   <li>On every feature-producing layer (DiT adaLN_modulation.1, UNet time_emb_proj): {@link LayerHook#replace} returns
 *       the decoded cached feature of every row's (t, y) when the selection map says "cache" for that feature at each
 *       row's timestep, so the layer does not compute; where a batch mixes cached and computed rows the layer computes
 *       and the cached rows of its output are overwritten.</li>
 *   <li>On the other TIB layers (t/y embedders, time MLP, class embedding): when every feature at every row's timestep
 *       comes from the cache, {@code replace} returns zeros of the output shape without computing (their output then
 *       only feeds layers that are replaced too), so the embedders and modulation linears really are skipped.</li>
 * </ul>
 * What remains of the TIB at inference is O(N·width) element-wise work (the sinusoid, SiLU, an add). Timesteps
 * missing from the cache are an error naming the cached values.
 */
public final class TemporalCacheHooks {
    private final DiffusionModel model;
    private final FeatureCache cache;
    private final boolean[][] useCache;     // [feature][ti]
    private final boolean[] allCached;      // [ti]
    private final List<Layer> layers = new ArrayList<>();
    private final List<LayerHook> hooks = new ArrayList<>();
    private final AtomicLong replacedCalls = new AtomicLong(), skippedCalls = new AtomicLong(), cachedRows = new AtomicLong();
    private volatile boolean attached;

    private TemporalCacheHooks(DiffusionModel model, FeatureCache cache, boolean[][] useCache) {
        this.model = model;
        this.cache = cache;
        int nf = cache.tib().features().size(), nt = cache.timesteps().length;
        this.useCache = new boolean[nf][nt];
        this.allCached = new boolean[nt];
        java.util.Arrays.fill(allCached, true);
        for (int i = 0; i < nf; i++) {
            for (int t = 0; t < nt; t++) {
                this.useCache[i][t] = useCache == null || useCache[i][t];
                allCached[t] &= this.useCache[i][t];
            }
        }
    }

    /**
     * Attaches the hooks.
     * @param useCache [feature][timestep index of the cache] true where the cached feature is used, false where the TIB
     *                 computes it (disturbance-aware selection); null = every feature from the cache
     * @throws IllegalArgumentException when the cache belongs to another architecture or the map has the wrong shape
     */
    public static TemporalCacheHooks attach(DiffusionModel model, FeatureCache cache, boolean[][] useCache) {
        TemporalInfoBlock tib = TemporalInfoBlock.of(model);
        if (!tib.architecture().equals(cache.tib().architecture()) || !tib.layers().equals(cache.tib().layers())
                || tib.features().size() != cache.tib().features().size())
            throw new IllegalArgumentException("cached temporal features: the cache was made for another model structure");
        for (TemporalInfoBlock.Feature f : tib.features()) if (f.width() != cache.tib().features().get(f.index()).width())
            throw new IllegalArgumentException("cached temporal features: feature " + f.name() + " has width " + f.width() + " in the model, "
                    + cache.tib().features().get(f.index()).width() + " in the cache");
        if (useCache != null) {
            if (useCache.length != tib.features().size()) throw new IllegalArgumentException("selection map: " + useCache.length
                    + " rows for " + tib.features().size() + " features");
            for (boolean[] row : useCache) if (row == null || row.length != cache.timesteps().length) throw new IllegalArgumentException(
                    "selection map: every row needs " + cache.timesteps().length + " timesteps");
        }
        TemporalCacheHooks h = new TemporalCacheHooks(model, cache, useCache);
        for (String name : tib.layers()) {
            Layer l = model.layers().get(name);
            TemporalInfoBlock.Feature f = tib.featureOfLayer(name);
            LayerHook hook = f != null ? h.new FeatureHook(f) : h.new SkipHook();
            h.layers.add(l);
            h.hooks.add(hook);
        }
        for (int i = 0; i < h.layers.size(); i++) h.layers.get(i).addHook(h.hooks.get(i));
        h.attached = true;
        return h;
    }

    /** Removes the hooks. Idempotent. */
    public synchronized void detach() {
        if (!attached) return;
        for (int i = 0; i < layers.size(); i++) layers.get(i).removeHook(hooks.get(i));
        attached = false;
    }

    public boolean attached() { return attached; }
    public FeatureCache cache() { return cache; }
    /** Whether feature i at the cache's timestep index ti comes from the cache. */
    public boolean usesCache(int feature, int ti) { return useCache[feature][ti]; }
    /** Feature-layer calls answered entirely from the cache (the layer did not compute). */
    public long replacedCalls() { return replacedCalls.get(); }
    /** Embedder / MLP calls skipped because every feature came from the cache. */
    public long skippedCalls() { return skippedCalls.get(); }
    /** Feature rows taken from the cache. */
    public long cachedRows() { return cachedRows.get(); }

    private int ti(float t) {
        int i = cache.indexOfT(t);
        if (i < 0) throw cache.notCached(t);
        return i;
    }

    private int yi(ForwardContext ctx, int r) {
        if (ctx.y() == null) {
            if (cache.labels() != null) throw new IllegalArgumentException("cached temporal features: the cache has labels, the call has none");
            return 0;
        }
        int i = cache.indexOfY(ctx.y()[r]);
        if (i < 0) throw new IllegalArgumentException("cached temporal features: label " + ctx.y()[r] + " is not cached");
        return i;
    }

    private final class FeatureHook implements LayerHook {
        final TemporalInfoBlock.Feature f;

        FeatureHook(TemporalInfoBlock.Feature f) { this.f = f; }

        @Override public Tensor replace(Layer layer, Tensor x, ForwardContext ctx) {
            int n = ctx.batch();
            for (int r = 0; r < n; r++) if (!useCache[f.index()][ti(ctx.t()[r])]) return null;
            Tensor out = Tensor.zeros(n, f.width());
            for (int r = 0; r < n; r++) cache.decode(f.index(), ti(ctx.t()[r]), yi(ctx, r), out.data(), r * f.width());
            replacedCalls.incrementAndGet();
            cachedRows.addAndGet(n);
            return out;
        }

        @Override public Tensor output(Layer layer, Tensor y, ForwardContext ctx) {
            int n = ctx.batch();
            boolean any = false, all = true;
            for (int r = 0; r < n; r++) {
                boolean c = useCache[f.index()][ti(ctx.t()[r])];
                any |= c;
                all &= c;
            }
            if (!any || all) return y;          // all: replace() produced y already
            Tensor out = y.copy();
            for (int r = 0; r < n; r++) {
                int ti = ti(ctx.t()[r]);
                if (useCache[f.index()][ti]) {
                    cache.decode(f.index(), ti, yi(ctx, r), out.data(), r * f.width());
                    cachedRows.incrementAndGet();
                }
            }
            return out;
        }
    }

    private final class SkipHook implements LayerHook {
        @Override public Tensor replace(Layer layer, Tensor x, ForwardContext ctx) {
            for (float t : ctx.t()) if (!allCached[ti(t)]) return null;
            skippedCalls.incrementAndGet();
            if (layer instanceof Linear l) {
                int rows = x.size() / Math.max(1, l.in());
                return Tensor.zeros(rows, l.out());
            }
            if (layer instanceof Embedding e) {
                Tensor table = e.params().values().iterator().next();
                return Tensor.zeros(x.size(), table.dim(1));
            }
            return null;
        }
    }
}
