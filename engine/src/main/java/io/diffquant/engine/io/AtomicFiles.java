package io.diffquant.engine.io;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Atomic file replacement: write a temporary file in the target's directory, fsync it, rename it over the target
 * ({@code ATOMIC_MOVE}), fsync the directory. Readers see the old file or the complete new one, never a half-written
 * one; on any failure the temporary file is deleted and an existing target is left untouched.
 * The classic write-then-rename pattern (see rename(2) and fsync(2)).
 */
public final class AtomicFiles {
    private AtomicFiles() {}

    /** Writes the content into the given channel (positioned at 0, opened for writing). */
    @FunctionalInterface
    public interface ChannelWriter {
        void write(FileChannel channel) throws IOException;
    }

    /** Writes the content into the given stream (buffered by the caller if needed; closing it is harmless). */
    @FunctionalInterface
    public interface StreamWriter {
        void write(OutputStream out) throws IOException;
    }

    public static void writeBytes(Path target, byte[] content) throws IOException {
        write(target, ch -> writeFully(ch, ByteBuffer.wrap(content)));
    }

    public static void writeString(Path target, String content) throws IOException {
        writeBytes(target, content.getBytes(StandardCharsets.UTF_8));
    }

    /** Atomically replaces {@code target} with what {@code writer} writes to an output stream. */
    public static void writeStream(Path target, StreamWriter writer) throws IOException {
        write(target, ch -> {
            OutputStream os = Channels.newOutputStream(ch);
            writer.write(os);
            os.flush();
        });
    }

    /**
     * Atomically replaces {@code target} with what {@code writer} writes. The target's directory must exist.
     * The temporary file is {@code .<name>.<random>.tmp} beside the target, created with the default permissions.
     */
    public static void write(Path target, ChannelWriter writer) throws IOException {
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new NoSuchFileException(target.toString(), null,
                    "the directory " + dir + " does not exist");
        }
        if (Files.isDirectory(abs)) {
            throw new IOException(target + ": the target is a directory");
        }
        Path tmp = createTemp(dir, abs.getFileName().toString());
        boolean moved = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                writer.write(ch);
                ch.force(true);
            }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException(target + ": the file system cannot rename atomically within " + dir, e);
            }
            moved = true;
            syncDirectory(dir);
        } finally {
            if (!moved) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the original failure matters more than a leftover temporary file
                }
            }
        }
    }

    /** Writes all of {@code buf} to {@code ch}. */
    public static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) ch.write(buf);
    }

    private static Path createTemp(Path dir, String name) throws IOException {
        for (int attempt = 0; ; attempt++) {
            byte[] rnd = new byte[6];
            ThreadLocalRandom.current().nextBytes(rnd);
            Path tmp = dir.resolve("." + name + "." + HexFormat.of().formatHex(rnd) + ".tmp");
            try {
                // CREATE_NEW with default attributes: the umask decides permissions, unlike createTempFile's 0600
                Files.newByteChannel(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
                return tmp;
            } catch (FileAlreadyExistsException e) {
                if (attempt >= 16) throw e;
            }
        }
    }

    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | RuntimeException ignored) {
            // not every platform lets a directory be opened or synced; the rename itself already happened
        }
    }
}
