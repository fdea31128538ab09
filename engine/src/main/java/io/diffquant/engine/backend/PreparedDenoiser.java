package io.diffquant.engine.backend;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;

/**
 * A denoiser set up by an {@link ExecutionBackend}: {@link #forward} runs the model with its quantized layers on the
 * backend's kernels, and {@link #execution()} says what ran (for the label of every result).
 *
 * <p>Backends work through the model's layer hooks, so while a prepared denoiser is open the model's own
 * {@code forward} runs the same way. {@link #close()} restores the model exactly (hooks removed, layers handed back to
 * fake quantization, native or device memory freed); it is idempotent. Not thread-safe unless the backend says so.
 */
public interface PreparedDenoiser extends Denoiser, AutoCloseable {
    /** The model this denoiser runs. */
    DiffusionModel model();

    /** What runs where: backend id, real low-bit vs fake quantization, layer counts, the label shown with results. */
    ExecutionInfo execution();

    /** Restores the model (idempotent). Calling {@link #forward} afterwards throws IllegalStateException. */
    @Override void close();
}
