package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A node of a denoiser addressed by its state_dict prefix (e.g. {@code blocks.3.attn.qkv}), holding its
 * parameters under their local names ({@code weight}, {@code bias}) and running hooks around its computation.
 */
public abstract class Layer {
    private final String name;
    private final Map<String, Tensor> params = new LinkedHashMap<>();
    private final List<LayerHook> hooks = new CopyOnWriteArrayList<>();
    /** tags set by the model (e.g. "temporal" for TIB members, "concat-split=128"). */
    private final Map<String, String> tags = new LinkedHashMap<>();

    protected Layer(String name) { this.name = name; }

    public final String name() { return name; }
    public abstract LayerKind kind();

    /** Local parameter names and tensors, in state_dict order. */
    public final Map<String, Tensor> params() { return Collections.unmodifiableMap(params); }

    public final Tensor param(String local) { return params.get(local); }

    protected final void declare(String local, Tensor t) { params.put(local, t); }

    /** Replaces a parameter's values; the shape must match the declared one. */
    public final void setParam(String local, Tensor t) {
        Tensor cur = params.get(local);
        if (cur == null) throw new IllegalArgumentException("layer '" + name + "' has no parameter '" + local + "'");
        if (!cur.sameShape(t)) throw new IllegalArgumentException("tensor '" + qualified(local) + "': expected shape "
                + Arrays.toString(cur.shape()) + " but got " + Arrays.toString(t.shape()));
        params.put(local, t);
    }

    public final String qualified(String local) { return name.isEmpty() ? local : name + "." + local; }

    public final long parameterCount() {
        long n = 0;
        for (Tensor t : params.values()) n += t.size();
        return n;
    }

    public final Map<String, String> tags() { return tags; }
    public final Layer tag(String key, String value) { tags.put(key, value); return this; }

    public final void addHook(LayerHook h) { hooks.add(h); }
    public final boolean removeHook(LayerHook h) { return hooks.remove(h); }
    public final void clearHooks() { hooks.clear(); }
    public final List<LayerHook> hooks() { return Collections.unmodifiableList(hooks); }

    /** The weight this layer computes with (null if it has none). */
    protected Tensor weightParam() { return params.get("weight"); }

    /** Compute the layer with the given (possibly hooked) weight. */
    protected abstract Tensor compute(Tensor x, Tensor weight, ForwardContext ctx);

    /** Runs the layer with its hooks. */
    public final Tensor forward(Tensor x, ForwardContext ctx) {
        if (hooks.isEmpty()) return compute(x, weightParam(), ctx);
        for (LayerHook h : hooks) x = h.input(this, x, ctx);
        Tensor w = weightParam();
        if (w != null) for (LayerHook h : hooks) w = h.weight(this, w, ctx);
        Tensor y = null;
        for (LayerHook h : hooks) {
            y = h.replace(this, x, ctx);
            if (y != null) break;
        }
        if (y == null) y = compute(x, w, ctx);
        for (LayerHook h : hooks) y = h.output(this, y, ctx);
        return y;
    }

    @Override public String toString() { return kind() + " " + name; }
}
