package io.diffquant.engine.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A PyTorch checkpoint that cannot be read (truncated or corrupt zip, unsupported pickle content, a tensor view outside
 * its storage) or that holds something this reader refuses to build (any class outside the state_dict subset).
 * The message always starts with the file and, where one is concerned, the tensor.
 */
public final class CheckpointException extends IOException {
    private final Path file;
    private final String tensor;

    public CheckpointException(Path file, String tensor, String message) {
        this(file, tensor, message, null);
    }

    public CheckpointException(Path file, String tensor, String message, Throwable cause) {
        super((file == null ? "<no file>" : file.toString()) + (tensor == null ? "" : ": tensor '" + tensor + "'")
                + ": " + message, cause);
        this.file = file;
        this.tensor = tensor;
    }

    public Path file() { return file; }

    /** The tensor concerned, or null when the error is about the file as a whole. */
    public String tensor() { return tensor; }
}
