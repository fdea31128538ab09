package io.diffquant.engine.tensor;

import java.util.Collections;
import java.util.Map;

/** The result of {@link Tape#backward}: d(loss)/d(tensor), keyed by the tensor's backing buffer (see {@link Tape}). */
public final class Gradients {
    private final Map<float[], float[]> grads;

    Gradients(Map<float[], float[]> grads) { this.grads = grads; }

    /** d(loss)/d(t) shaped like t, or null when t was not reached (or not wanted). Shares the stored array. */
    public Tensor get(Tensor t) {
        float[] g = grads.get(t.data());
        return g == null ? null : Tensor.of(g, t.shape());
    }

    /** Like {@link #get} but zeros when t was not reached. */
    public Tensor getOrZeros(Tensor t) {
        Tensor g = get(t);
        return g == null ? Tensor.zeros(t.shape()) : g;
    }

    public boolean has(Tensor t) { return grads.containsKey(t.data()); }

    /** The raw gradient buffer of t (shared, mutable), or null. */
    public float[] raw(Tensor t) { return grads.get(t.data()); }

    public int size() { return grads.size(); }

    /** Read-only view of all gradient buffers keyed by tensor buffer. */
    public Map<float[], float[]> asMap() { return Collections.unmodifiableMap(grads); }
}
