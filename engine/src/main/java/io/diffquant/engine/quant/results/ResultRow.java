package io.diffquant.engine.quant.results;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The measured row of one configuration (null config: the full-precision model). Metrics that do not apply are NaN:
 * class accuracy for unconditional models, PSNR/SSIM/MSE for the FP row; {@code extra} holds metrics plugged in by the
 * caller (e.g. the mean temporal feature error).
 *
 * @param error         null when the row was measured, else why it could not be (calibration or sampling failed)
 * @param fid           FID-FMNIST against the test-set statistics
 * @param sfid          sFID-FMNIST
 * @param classAccuracy percent of samples the classifier assigns to their conditioning class
 * @param psnr          PSNR [dB] vs the FP samples of the same seeds (range 2 of [-1, 1] images)
 * @param ssim          SSIM vs the FP samples
 * @param mse           MSE vs the FP samples ([-1, 1] units)
 * @param weightBits    average bits per weight including scale overhead (32 for FP)
 */
public record ResultRow(ResultConfig config, String error, double fid, double sfid, double classAccuracy, double psnr, double ssim, double mse,
                        double weightBits, double calibrationSeconds, double samplingSeconds, Map<String, Double> extra) {
    public ResultRow {
        extra = extra == null ? Map.of() : new LinkedHashMap<>(extra);
    }

    public static ResultRow failed(ResultConfig c, String error, double calibrationSeconds) {
        return new ResultRow(c, error, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN,
                calibrationSeconds, 0, null);
    }

    public boolean ok() { return error == null; }
    public boolean isFullPrecision() { return config == null; }
    public String label() { return config == null ? "FP32" : config.label(); }
}
