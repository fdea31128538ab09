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
 * Collects the display frames of a pull-based {@link SamplingRun} (ADM's progressive sample loop): per step the
 * timestep and the x̂_0 change, and per kept frame the x̂_0 and x_t tensors and their grids. Frames are kept for every step unless
 * all of them would take more than the frame budget; then every k-th step (and the last) is kept. The toolkit-free
 * core of {@link SamplingTask}.
 */
public final class SamplingFrames {
    /** Default memory for the frames of one run. */
    public static final long DEFAULT_FRAME_BUDGET_BYTES = 512L << 20;

    private final String label;
    private final int totalSteps;
    private final long budgetBytes;
    private final long started = System.nanoTime();
    private final List<BufferedImage> predX0 = new ArrayList<>();
    private final List<BufferedImage> xt = new ArrayList<>();
    private final List<Tensor> predX0Tensors = new ArrayList<>();
    private final List<Tensor> xtTensors = new ArrayList<>();
    private int[] timesteps = new int[0];
    private double[] change = new double[0];
    private int[] frameSteps = new int[0];
    private int stride;
    private Tensor lastPredX0;
    private Tensor lastX;

    public SamplingFrames(String label, int totalSteps) { this(label, totalSteps, DEFAULT_FRAME_BUDGET_BYTES); }

    public SamplingFrames(String label, int totalSteps, long budgetBytes) {
        if (budgetBytes <= 0) throw new IllegalArgumentException("frame budget must be > 0 bytes, got " + budgetBytes);
        this.label = label;
        this.totalSteps = totalSteps;
        this.budgetBytes = budgetBytes;
    }

    /** Every how many steps a frame is kept (1 = all; 0 before the first step). */
    public int stride() { return stride; }

    /** Adds one finished step. */
    public void add(SamplingStep s) {
        int k = timesteps.length;
        timesteps = Arrays.copyOf(timesteps, k + 1);
        timesteps[k] = s.t();
        change = Arrays.copyOf(change, k + 1);
        change[k] = rmsDiff(s.predX0(), lastPredX0);
        lastPredX0 = s.predX0();
        lastX = s.x();
        BufferedImage p = null;
        if (stride == 0) {
            p = DisplayImages.grid(s.predX0());
            long perStep = 2L * 4L * p.getWidth() * p.getHeight() + 2L * 4L * s.x().size();
            stride = (int) Math.max(1, Math.min(Math.max(1, totalSteps), (perStep * totalSteps + budgetBytes - 1) / budgetBytes));
        }
        if (k % stride == 0 || k == totalSteps - 1) {
            predX0.add(p != null ? p : DisplayImages.grid(s.predX0()));
            xt.add(DisplayImages.grid(s.x()));
            predX0Tensors.add(s.predX0());
            xtTensors.add(s.x());
            frameSteps = Arrays.copyOf(frameSteps, frameSteps.length + 1);
            frameSteps[frameSteps.length - 1] = k;
        }
    }

    /** The frames so far as an immutable result. */
    public GenerationResult snapshot() {
        return new GenerationResult(label, timesteps, change, frameSteps, predX0, xt, predX0Tensors, xtTensors, lastX, totalSteps,
                System.nanoTime() - started);
    }

    /** {@link #collect(SamplingRun, String, long, BooleanSupplier, Consumer)} with the default frame budget. */
    public static GenerationResult collect(SamplingRun run, String label, BooleanSupplier cancelled, Consumer<GenerationResult> onStep) {
        return collect(run, label, DEFAULT_FRAME_BUDGET_BYTES, cancelled, onStep);
    }

    /**
     * Pulls every step of {@code run}, adding each and passing the snapshot to {@code onStep}; stops (cancelling the
     * run) as soon as {@code cancelled} says so, between steps. Returns the last snapshot.
     */
    public static GenerationResult collect(SamplingRun run, String label, long budgetBytes, BooleanSupplier cancelled,
                                           Consumer<GenerationResult> onStep) {
        SamplingFrames f = new SamplingFrames(label, run.totalSteps(), budgetBytes);
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
