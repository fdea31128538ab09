package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

/** torch.nn.Embedding: weight (named by the model, e.g. {@code embedding_table} in DiT) [rows, dim]. */
public final class Embedding extends Layer {
    private final String tableName;

    public Embedding(String name, String tableName, int rows, int dim) {
        super(name);
        this.tableName = tableName;
        declare(tableName, Tensor.zeros(rows, dim));
    }

    @Override public LayerKind kind() { return LayerKind.EMBEDDING; }

    @Override protected Tensor weightParam() { return param(tableName); }

    /** Looks up rows; the input tensor holds the integer ids as floats [N]. */
    @Override protected Tensor compute(Tensor ids, Tensor w, ForwardContext ctx) {
        int[] idx = new int[ids.size()];
        for (int i = 0; i < idx.length; i++) idx[i] = Math.round(ids.data()[i]);
        return Ops.embedding(w, idx);
    }
}
