package io.diffquant.engine.io;

import java.io.IOException;

/**
 * A JSON document that cannot be read or does not have the expected shape. The message names the source (usually
 * the file), then the line/column (syntax errors) or the JSON path ({@code $.block_out_channels[1]}), then the problem.
 */
public final class JsonException extends IOException {
    private final String source;
    private final String path;

    public JsonException(String source, String path, String message) {
        this(source, path, message, null);
    }

    public JsonException(String source, String path, String message, Throwable cause) {
        super(source + ": " + (path == null ? "" : path + ": ") + message, cause);
        this.source = source;
        this.path = path;
    }

    /** Where the JSON came from (a file path or a description). */
    public String source() { return source; }

    /** The JSON path of the offending value ({@code $.a.b[2]}), or null for syntax errors. */
    public String path() { return path; }
}
