package io.diffquant.app.gui.vm;

import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.diffusion.SamplingStep;
import io.diffquant.engine.tensor.Tensor;

import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * Collects the display frames of a pull-based {@link SamplingRun} (ADM's progressive sample loop): one x̂_0 grid
 * and one x_t grid per step. The toolkit-free core of {@link SamplingTask}.
 */
public final class SamplingFrames {
    private final String label;
    private final int totalSteps;
    private final long started = System.nanoTime();
    private final List<BufferedImage> predX0 = new ArrayList<>();
    private final List<BufferedImage> xt = new ArrayList<>();
    private final List<Integer> timesteps = new ArrayList<>();
    private double[] change = new double[0];
    private Tensor lastPredX0;
    private Tensor lastX;

    public SamplingFrames(String label, int totalSteps) {
        this.label = label;
        this.totalSteps = totalSteps;
    }

    /** Adds one finished step. */
    public void add(SamplingStep s) {
        predX0.add(DisplayImages.grid(s.predX0()));
        xt.add(DisplayImages.grid(s.x()));
        timesteps.add(s.t());
        change = Arrays.copyOf(change, change.length + 1);
        change[change.length - 1] = rmsDiff(s.predX0(), lastPredX0);
        lastPredX0 = s.predX0();
        lastX = s.x();
    }

    /** The frames so far as an immutable result. */
    public GenerationResult snapshot() {
        int[] ts = timesteps.stream().mapToInt(Integer::intValue).toArray();
        return new GenerationResult(label, ts, predX0, xt, change, lastX, totalSteps, System.nanoTime() - started);
    }

    /**
     * Pulls every step of {@code run}, adding each and passing the snapshot to {@code onStep}; stops (cancelling the
     * run) as soon as {@code cancelled} says so, between steps. Returns the last snapshot.
     */
    public static GenerationResult collect(SamplingRun run, String label, BooleanSupplier cancelled, Consumer<GenerationResult> onStep) {
        SamplingFrames f = new SamplingFrames(label, run.totalSteps());
        while (run.hasNext()) {
            if (cancelled.getAsBoolean()) {
                run.cancel();
                break;
            }
            f.add(run.next());
            if (onStep != null) onStep.accept(f.snapshot());
        }
        return f.snapshot();
    }

    /** sqrt(mean((a - b)^2)); b null = zeros. */
    static double rmsDiff(Tensor a, Tensor b) {
        float[] x = a.data();
        float[] y = b == null ? null : b.data();
        double s = 0;
        for (int i = 0; i < x.length; i++) {
            double d = y == null ? x[i] : (double) x[i] - y[i];
            s += d * d;
        }
        return x.length == 0 ? 0 : Math.sqrt(s / x.length);
    }
}
