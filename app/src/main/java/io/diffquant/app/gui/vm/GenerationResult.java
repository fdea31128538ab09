package io.diffquant.app.gui.vm;

import io.diffquant.engine.tensor.Tensor;

import java.awt.image.BufferedImage;
import java.util.List;

/**
 * What one sampling run showed. Per finished step: the ORIGINAL timestep and the RMS change of x̂_0 from the previous
 * step (the first step: RMS of x̂_0 itself). Per kept frame (every step unless the grids would exceed the frame
 * budget, then every k-th step and the last): the grid of the predicted x̂_0 and of x_t and its step index. While
 * the run is in progress everything holds the steps done so far ({@link #complete()} false).
 *
 * @param label        which column this is ("FP32", later "baseline" / "current config")
 * @param timesteps    ORIGINAL timestep of each finished step, in sampling order
 * @param predX0Change RMS of x̂_0(step k) - x̂_0(step k-1), per finished step
 * @param frameSteps   step index (0 = noisiest) of each kept frame, ascending
 * @param predX0Grids  grid of x̂_0 of each kept frame
 * @param xtGrids      grid of x after each kept frame's step (the last one of a finished run is the final sample)
 * @param predX0Frames x̂_0 [N, C, H, W] of each kept frame (for the difference heatmaps and the export)
 * @param xtFrames     x_t [N, C, H, W] after each kept frame's step
 * @param samples      x after the last finished step [N, C, H, W]
 * @param totalSteps   steps of the whole run
 * @param elapsedNanos wall time so far
 */
public record GenerationResult(String label, int[] timesteps, double[] predX0Change, int[] frameSteps,
                               List<BufferedImage> predX0Grids, List<BufferedImage> xtGrids, List<Tensor> predX0Frames,
                               List<Tensor> xtFrames, Tensor samples, int totalSteps, long elapsedNanos) {
    public GenerationResult {
        timesteps = timesteps.clone();
        predX0Change = predX0Change.clone();
        frameSteps = frameSteps.clone();
        predX0Grids = List.copyOf(predX0Grids);
        xtGrids = List.copyOf(xtGrids);
        predX0Frames = List.copyOf(predX0Frames);
        xtFrames = List.copyOf(xtFrames);
        if (predX0Change.length != timesteps.length || predX0Grids.size() != frameSteps.length || xtGrids.size() != frameSteps.length
                || predX0Frames.size() != frameSteps.length || xtFrames.size() != frameSteps.length)
            throw new IllegalArgumentException("generation result: " + timesteps.length + " timesteps, " + predX0Change.length
                    + " changes, " + frameSteps.length + " frame steps, " + predX0Grids.size() + "/" + xtGrids.size() + " grids");
    }

    @Override public int[] timesteps() { return timesteps.clone(); }
    @Override public double[] predX0Change() { return predX0Change.clone(); }
    @Override public int[] frameSteps() { return frameSteps.clone(); }

    public int stepsDone() { return timesteps.length; }
    public int frames() { return frameSteps.length; }
    /** Step index of frame k. */
    public int frameStep(int k) { return frameSteps[k]; }
    /** ORIGINAL timestep of frame k. */
    public int frameTimestep(int k) { return timesteps[frameSteps[k]]; }
    public boolean complete() { return stepsDone() == totalSteps; }
    /** The tensor of frame k: x̂_0 or x_t. */
    public Tensor frameTensor(int k, boolean predX0) { return (predX0 ? predX0Frames : xtFrames).get(k); }

    /** The result relabelled (the same frames). */
    public GenerationResult withLabel(String l) {
        return new GenerationResult(l, timesteps, predX0Change, frameSteps, predX0Grids, xtGrids, predX0Frames, xtFrames, samples, totalSteps, elapsedNanos);
    }

    /** The grid of x after the last kept frame (the final sample of a finished run), or null before the first step. */
    public BufferedImage finalGrid() { return xtGrids.isEmpty() ? null : xtGrids.getLast(); }
}
