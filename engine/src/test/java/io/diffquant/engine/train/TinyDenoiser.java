package io.diffquant.engine.train;

import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Embedding;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

import java.util.Random;

/** A small conditional conv denoiser built from the engine's layers, for trainer tests (not a product model). */
final class TinyDenoiser extends DiffusionModel {
    private final int c, size, classes, width;
    private final boolean learnSigma;
    private final Conv2d convIn, convOut;
    private final Linear t1, t2;
    private final Embedding yEmb;
    private final Norm norm;

    TinyDenoiser(int c, int size, int classes, boolean learnSigma, int width, long seed) {
        this.c = c;
        this.size = size;
        this.classes = classes;
        this.learnSigma = learnSigma;
        this.width = width;
        convIn = layers.add(new Conv2d("conv_in", c, width, 3, 1, 1, true));
        t1 = layers.add(new Linear("time.linear_1", 16, width, true));
        t2 = layers.add(new Linear("time.linear_2", width, width, true));
        yEmb = classes > 0 ? layers.add(new Embedding("class_embedding", "weight", classes + 1, width)) : null;
        norm = layers.add(new Norm("norm", Norm.Type.GROUP, width, 2, 1e-5f, true));
        convOut = layers.add(new Conv2d("conv_out", width, learnSigma ? 2 * c : c, 3, 1, 1, true));
        Random r = new Random(seed);
        for (Layer l : layers.all()) for (var e : l.params().entrySet()) {
            Tensor p = e.getValue();
            if (l == norm) continue;
            double fanIn = p.rank() > 1 ? p.size() / p.dim(0) : 16;
            for (int i = 0; i < p.size(); i++) p.data()[i] = (float) (r.nextGaussian() / Math.sqrt(fanIn));
        }
    }

    @Override public String architecture() { return "Tiny"; }
    @Override public int inChannels() { return c; }
    @Override public int outChannels() { return learnSigma ? 2 * c : c; }
    @Override public int sampleSize() { return size; }
    @Override public int numClasses() { return classes; }
    @Override public boolean learnSigma() { return learnSigma; }

    @Override public Tensor forward(Tensor x, float[] t, int[] y) {
        ForwardContext ctx = new ForwardContext(t, y);
        Tensor temb = Ops.timestepEmbedding(t, 16, true, 0f, 10000);
        Tensor e = t2.forward(Ops.silu(t1.forward(temb, ctx)), ctx);
        if (yEmb != null) {
            float[] ids = new float[y.length];
            for (int i = 0; i < y.length; i++) ids[i] = y[i];
            e = Ops.add(e, yEmb.forward(Tensor.of(ids, y.length), ctx));
        }
        Tensor h = convIn.forward(x, ctx);
        Ops.addPerSampleChannel(h, Ops.silu(e));
        h = Ops.silu(norm.forward(h, ctx));
        return convOut.forward(h, ctx);
    }

    /** Synthetic labelled images in [-1, 1]: class k is a bright k-th quadrant-ish blob on a dark background plus noise. */
    static Dataset blobs(int n, int c, int size, int classes, long seed) {
        Random r = new Random(seed);
        Tensor img = Tensor.zeros(n, c, size, size);
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            int k = i % classes;
            labels[i] = k;
            int cy = (k / 2) * size / 2, cx = (k % 2) * size / 2;
            for (int ch = 0; ch < c; ch++)
                for (int yy = 0; yy < size; yy++)
                    for (int xx = 0; xx < size; xx++) {
                        boolean in = yy >= cy && yy < cy + size / 2 && xx >= cx && xx < cx + size / 2;
                        img.data()[((i * c + ch) * size + yy) * size + xx] = (float) ((in ? 0.8 : -0.8) + 0.05 * r.nextGaussian());
                    }
        }
        return Dataset.of(img, labels);
    }
}
