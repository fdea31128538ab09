package io.diffquant.app.gui.vm;

import io.diffquant.engine.tensor.Tensor;

import java.awt.image.BufferedImage;
import java.util.List;

/**
 * What one sampling run showed: per finished step the grid of the predicted x̂_0 and of x_t, the ORIGINAL
 * timestep, and the RMS change of x̂_0 from the previous step (the first step: RMS of x̂_0 itself). While the run is
 * in progress the lists hold the steps done so far ({@link #complete()} false).
 *
 * @param label        which column this is ("FP32", later "baseline" / "current config")
 * @param timesteps    ORIGINAL timestep of each finished step, in sampling order
 * @param predX0Grids  grid of x̂_0 after each finished step
 * @param xtGrids      grid of x after each finished step (the last one is the final sample)
 * @param predX0Change RMS of x̂_0(step k) - x̂_0(step k-1), per finished step
 * @param samples      x after the last finished step [N, C, H, W]
 * @param totalSteps   steps of the whole run
 * @param elapsedNanos wall time so far
 */
public record GenerationResult(String label, int[] timesteps, List<BufferedImage> predX0Grids, List<BufferedImage> xtGrids,
                               double[] predX0Change, Tensor samples, int totalSteps, long elapsedNanos) {
    public GenerationResult {
        timesteps = timesteps.clone();
        predX0Change = predX0Change.clone();
        predX0Grids = List.copyOf(predX0Grids);
        xtGrids = List.copyOf(xtGrids);
    }

    @Override public int[] timesteps() { return timesteps.clone(); }
    @Override public double[] predX0Change() { return predX0Change.clone(); }

    public int stepsDone() { return predX0Grids.size(); }
    public boolean complete() { return stepsDone() == totalSteps; }
    /** The final sample grid (x after the last finished step), or null before the first step. */
    public BufferedImage finalGrid() { return xtGrids.isEmpty() ? null : xtGrids.getLast(); }
}
