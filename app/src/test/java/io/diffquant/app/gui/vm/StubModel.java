package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Tensor;

/** A weightless denoiser predicting eps = 0 (then x̂_0 = x / sqrt(ᾱ_t)), for toolkit-free view-model tests. */
final class StubModel extends DiffusionModel {
    private final int channels, size, classes;
    private final boolean learnSigma;
    int calls;

    StubModel(int channels, int size, int classes, boolean learnSigma) {
        this.channels = channels;
        this.size = size;
        this.classes = classes;
        this.learnSigma = learnSigma;
    }

    @Override public String architecture() { return "Stub"; }
    @Override public int inChannels() { return channels; }
    @Override public int outChannels() { return learnSigma ? 2 * channels : channels; }
    @Override public int sampleSize() { return size; }
    @Override public int numClasses() { return classes; }
    @Override public boolean learnSigma() { return learnSigma; }

    @Override public Tensor forward(Tensor x, float[] t, int[] y) {
        calls++;
        return Tensor.zeros(x.dim(0), outChannels(), x.dim(2), x.dim(3));
    }
}
