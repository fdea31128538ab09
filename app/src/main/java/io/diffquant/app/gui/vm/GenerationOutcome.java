package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.config.QuantConfig;

import java.awt.image.BufferedImage;
import java.util.List;

/**
 * What a side-by-side generation showed so far (a {@link GenerationTask}'s value, replaced after every step): the FP32,
 * baseline and current-config runs from the same noise and labels, the difference heatmaps |column − FP32| per kept
 * frame, the metrics table and the calibrated configs.
 *
 * @param fp              the full-precision run (null before its first step)
 * @param baseline        the baseline run, or null (column off or not sampled yet)
 * @param current         the current configuration's run, or null
 * @param baselineHeatmap |baseline − FP32| per frame, or null
 * @param currentHeatmap  |current − FP32| per frame, or null
 * @param metrics         one row per finished column (FP32 first)
 * @param baselineConfig  the calibrated baseline config (null when the column is off or FP)
 * @param currentConfig   the calibrated current config (null when the column is off or FP)
 * @param backend         the compute backend the run used
 * @param notes           remarks for the user (why FID-FMNIST is missing, a column that equals FP32 ...)
 */
public record GenerationOutcome(GenerationResult fp, GenerationResult baseline, GenerationResult current, Heatmap baselineHeatmap,
                                Heatmap currentHeatmap, List<MetricsRow> metrics, QuantConfig baselineConfig, QuantConfig currentConfig,
                                String backend, List<String> notes) {
    public GenerationOutcome {
        metrics = List.copyOf(metrics);
        notes = List.copyOf(notes);
    }

    public static GenerationOutcome empty(String backend) {
        return new GenerationOutcome(null, null, null, null, null, List.of(), null, null, backend, List.of());
    }

    /**
     * Difference heatmaps of one column against FP32, per kept frame (same frames as the runs).
     * @param predX0    grid of |x̂_0 − x̂_0^FP| per frame
     * @param xt        grid of |x_t − x_t^FP| per frame
     * @param predX0Max the value at the top of the colour scale per frame (the frame's largest difference)
     * @param xtMax     same for x_t
     */
    public record Heatmap(List<BufferedImage> predX0, List<BufferedImage> xt, double[] predX0Max, double[] xtMax) {
        public Heatmap {
            predX0 = List.copyOf(predX0);
            xt = List.copyOf(xt);
            predX0Max = predX0Max.clone();
            xtMax = xtMax.clone();
        }
        public int frames() { return predX0.size(); }
        public BufferedImage grid(int frame, boolean predX0Mode) {
            List<BufferedImage> l = predX0Mode ? predX0 : xt;
            return l.isEmpty() ? null : l.get(Math.max(0, Math.min(frame, l.size() - 1)));
        }
        public double max(int frame, boolean predX0Mode) {
            double[] m = predX0Mode ? predX0Max : xtMax;
            return m.length == 0 ? 0 : m[Math.max(0, Math.min(frame, m.length - 1))];
        }
    }

    /**
     * One column of the metrics table.
     * @param column         "FP32", "Baseline rtn", "Current config"
     * @param fid            FID-FMNIST (NaN when not available: not a 28x28x1 model, classifier missing, fewer than 2 images)
     * @param psnr           mean PSNR vs FP32 in dB (NaN for the FP32 row; +inf when identical)
     * @param ssim           mean SSIM vs FP32 (NaN for FP32 or images below 11x11)
     * @param mse            mean MSE vs FP32 ([-1, 1] units)
     * @param maxAbs         largest |difference| vs FP32
     * @param avgWeightBits  average weight bits of the configuration (32 for FP32)
     * @param seconds        sampling wall time
     */
    public record MetricsRow(String column, double fid, double psnr, double ssim, double mse, double maxAbs, double avgWeightBits,
                             double seconds) {}

    public GenerationOutcome withFp(GenerationResult r) {
        return new GenerationOutcome(r, baseline, current, baselineHeatmap, currentHeatmap, metrics, baselineConfig, currentConfig, backend, notes);
    }
    public GenerationOutcome withBaseline(GenerationResult r) {
        return new GenerationOutcome(fp, r, current, baselineHeatmap, currentHeatmap, metrics, baselineConfig, currentConfig, backend, notes);
    }
    public GenerationOutcome withCurrent(GenerationResult r) {
        return new GenerationOutcome(fp, baseline, r, baselineHeatmap, currentHeatmap, metrics, baselineConfig, currentConfig, backend, notes);
    }
    public GenerationOutcome withHeatmaps(Heatmap b, Heatmap c) {
        return new GenerationOutcome(fp, baseline, current, b, c, metrics, baselineConfig, currentConfig, backend, notes);
    }
    public GenerationOutcome withMetrics(List<MetricsRow> m) {
        return new GenerationOutcome(fp, baseline, current, baselineHeatmap, currentHeatmap, m, baselineConfig, currentConfig, backend, notes);
    }
    public GenerationOutcome withConfigs(QuantConfig b, QuantConfig c) {
        return new GenerationOutcome(fp, baseline, current, baselineHeatmap, currentHeatmap, metrics, b, c, backend, notes);
    }
    public GenerationOutcome withNote(String n) {
        List<String> l = new java.util.ArrayList<>(notes);
        l.add(n);
        return new GenerationOutcome(fp, baseline, current, baselineHeatmap, currentHeatmap, metrics, baselineConfig, currentConfig, backend, l);
    }
}
