package io.diffquant.engine.train;

import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * Supervised classification: mean cross-entropy of the model's logits [B, K] against the batch labels
 * (torch.nn.functional.cross_entropy), reporting the batch accuracy as a term. Optional random horizontal flips
 * of the input (drawn from the step's {@link TrainRng}, so runs stay reproducible).
 */
public final class ClassifierObjective implements Objective {
    private final Function<Tensor, Tensor> logits;
    private final int numClasses;
    private final boolean hflip;

    /**
     * @param logits     images [B, C, H, W] -> logits [B, numClasses], built from recorded ops
     * @param hflip      flip each image left-right with probability 1/2
     */
    public ClassifierObjective(Function<Tensor, Tensor> logits, int numClasses, boolean hflip) {
        if (numClasses < 2) throw new IllegalArgumentException("a classifier needs at least 2 classes, got " + numClasses);
        this.logits = logits;
        this.numClasses = numClasses;
        this.hflip = hflip;
    }

    @Override public StepLoss loss(Batch batch, TrainRng rng) {
        if (batch.labels() == null) throw new IllegalArgumentException("classifier objective: the dataset has no labels");
        Tensor x = batch.images();
        if (hflip) {
            x = Tensor.of(x.data().clone(), x.shape());
            int b = x.dim(0), planes = x.size() / b / (x.dim(2) * x.dim(3)), h = x.dim(2), w = x.dim(3);
            float[] d = x.data();
            for (int i = 0; i < b; i++) {
                if (rng.nextDouble() >= 0.5) continue;
                for (int p = 0; p < planes; p++)
                    for (int r = 0; r < h; r++) {
                        int o = ((i * planes + p) * h + r) * w;
                        for (int j = 0; j < w / 2; j++) {
                            float tmp = d[o + j];
                            d[o + j] = d[o + w - 1 - j];
                            d[o + w - 1 - j] = tmp;
                        }
                    }
            }
        }
        Tensor z = logits.apply(x);
        if (z.rank() != 2 || z.dim(0) != batch.size() || z.dim(1) != numClasses) throw new IllegalStateException(
                "classifier objective: the model returned " + Arrays.toString(z.shape()) + ", expected [" + batch.size()
                        + ", " + numClasses + "]");
        Tensor ce = Ops.crossEntropy(z, batch.labels());
        int correct = 0;
        float[] zd = z.data();
        for (int i = 0; i < batch.size(); i++) {
            int best = 0;
            for (int k = 1; k < numClasses; k++) if (zd[i * numClasses + k] > zd[i * numClasses + best]) best = k;
            if (best == batch.labels()[i]) correct++;
        }
        Map<String, Double> terms = new LinkedHashMap<>();
        terms.put("cross_entropy", (double) ce.data()[0]);
        terms.put("accuracy", correct / (double) batch.size());
        return new StepLoss(ce, terms);
    }
}
