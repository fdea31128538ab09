/**
 * File input and output of the engine: safetensors ({@link io.diffquant.engine.io.SafetensorsReader}, memory-mapped,
 * fully validated; {@link io.diffquant.engine.io.SafetensorsWriter}, atomic), JSON config files
 * ({@link io.diffquant.engine.io.Json}, {@link io.diffquant.engine.io.JsonView}), Fashion-MNIST IDX files
 * ({@link io.diffquant.engine.io.IdxReader}, {@link io.diffquant.engine.io.FashionMnist}), F16/BF16 conversions
 * ({@link io.diffquant.engine.io.HalfFloats}) and atomic file replacement ({@link io.diffquant.engine.io.AtomicFiles}).
 * Every error is an {@link java.io.IOException} whose message starts with the file concerned.
 */
package io.diffquant.engine.io;
