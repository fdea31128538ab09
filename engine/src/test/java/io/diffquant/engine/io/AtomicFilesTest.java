package io.diffquant.engine.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AtomicFiles: complete replacement, untouched target and no leftovers on failure, ordinary permissions. */
class AtomicFilesTest {
    @TempDir Path dir;

    private List<Path> listing() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.sorted().toList();
        }
    }

    @Test
    void writesAndReplaces() throws IOException {
        Path p = dir.resolve("a.txt");
        AtomicFiles.writeString(p, "first");
        assertEquals("first", Files.readString(p));
        AtomicFiles.writeBytes(p, new byte[] {1, 2, 3});
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(p));
        AtomicFiles.writeStream(p, out -> out.write("via stream".getBytes()));
        assertEquals("via stream", Files.readString(p));
        assertEquals(List.of(p), listing());
    }

    @Test
    void failureMidWriteKeepsTheOldFileAndDeletesTheTemporary() throws IOException {
        Path p = dir.resolve("keep.bin");
        AtomicFiles.writeString(p, "old content");
        IOException io = assertThrows(IOException.class, () -> AtomicFiles.write(p, ch -> {
            AtomicFiles.writeFully(ch, ByteBuffer.wrap("partial new".getBytes()));
            throw new IOException("disk full (simulated)");
        }));
        assertEquals("disk full (simulated)", io.getMessage());
        assertThrows(IllegalStateException.class, () -> AtomicFiles.write(p, ch -> {
            AtomicFiles.writeFully(ch, ByteBuffer.wrap("partial".getBytes()));
            throw new IllegalStateException("bug in the writer");
        }));
        assertEquals("old content", Files.readString(p));
        assertEquals(List.of(p), listing());
        // the same for a target that does not exist yet: nothing appears
        Path q = dir.resolve("new.bin");
        assertThrows(IOException.class, () -> AtomicFiles.write(q, ch -> { throw new IOException("fail"); }));
        assertEquals(List.of(p), listing());
    }

    @Test
    void missingDirectoryIsAClearError() {
        Path p = dir.resolve("missing/x.json");
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> AtomicFiles.writeString(p, "x"));
        assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void permissionsAreThoseOfAnOrdinaryNewFile() throws IOException {
        Path plain = dir.resolve("plain.txt");
        Files.writeString(plain, "x");
        Set<PosixFilePermission> expected;
        try {
            expected = Files.getPosixFilePermissions(plain);
        } catch (UnsupportedOperationException e) {
            return;   // not a POSIX file system: nothing to compare
        }
        Path p = dir.resolve("atomic.txt");
        AtomicFiles.writeString(p, "x");
        assertEquals(expected, Files.getPosixFilePermissions(p), "not the 0600 of createTempFile");
    }
}
