package io.diffquant.engine.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A safetensors file that cannot be read or written as asked (format: huggingface/safetensors README, "Format").
 * The message always starts with the file and, where one is concerned, the tensor.
 */
public final class SafetensorsException extends IOException {
    private final Path file;
    private final String tensor;

    public SafetensorsException(Path file, String tensor, String message) {
        this(file, tensor, message, null);
    }

    public SafetensorsException(Path file, String tensor, String message, Throwable cause) {
        super(format(file, tensor, message), cause);
        this.file = file;
        this.tensor = tensor;
    }

    private static String format(Path file, String tensor, String message) {
        StringBuilder sb = new StringBuilder();
        sb.append(file == null ? "<no file>" : file.toString());
        if (tensor != null) sb.append(": tensor '").append(tensor).append('\'');
        return sb.append(": ").append(message).toString();
    }

    /** The file concerned. */
    public Path file() { return file; }

    /** The tensor concerned, or null when the error is about the file as a whole. */
    public String tensor() { return tensor; }
}
