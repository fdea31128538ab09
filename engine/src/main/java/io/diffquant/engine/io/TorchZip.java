package io.diffquant.engine.io;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The zip container of {@code torch.save} (PKWARE APPNOTE.TXT: end of central directory, zip64 locator and record,
 * central directory headers, local headers) read straight from a mapped file. Entries written by PyTorch are STORED
 * (uncompressed, 64-byte aligned), so their data is a slice of the mapping; DEFLATED entries (a re-zipped
 * checkpoint) are inflated into the heap. Every offset is checked against the file size.
 */
final class TorchZip {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int EOCD = 0x06054b50, ZIP64_LOCATOR = 0x07064b50, ZIP64_EOCD = 0x06064b50;
    private static final int CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

    /** One archive member: compression method, sizes, and where its data starts in the file. */
    record Entry(String name, int method, long compressedSize, long size, long dataOffset) {}

    private final Path file;
    private final MemorySegment seg;
    private final Map<String, Entry> entries;

    private TorchZip(Path file, MemorySegment seg, Map<String, Entry> entries) {
        this.file = file;
        this.seg = seg;
        this.entries = entries;
    }

    Map<String, Entry> entries() { return entries; }

    static TorchZip read(Path file, MemorySegment seg) throws CheckpointException {
        long size = seg.byteSize();
        if (size >= 2 && (seg.get(ValueLayout.JAVA_BYTE, 0) & 0xFF) == 0x80 && !startsWithZip(seg)) {
            throw new CheckpointException(file, null, "this is the legacy (PyTorch < 1.6) torch.save format, not the zip format; "
                    + "load it in Python and save it again with torch.save(obj, path) (PyTorch >= 1.6), then import that file");
        }
        if (size < 22) throw new CheckpointException(file, null, "file of " + size + " bytes is too short to be a zip archive "
                + "(torch.save writes zip archives)");
        long eocd = -1;
        for (long p = size - 22; p >= Math.max(0, size - 22 - 0xFFFF); p--) {
            if (seg.get(U32, p) == EOCD) { eocd = p; break; }
        }
        if (eocd < 0) throw new CheckpointException(file, null, "no zip end-of-central-directory record: the file is truncated "
                + "or is not a PyTorch checkpoint (torch.save zip format)");
        long count = u16(seg, eocd + 10);
        long cdSize = u32(seg, eocd + 12);
        long cdOffset = u32(seg, eocd + 16);
        if (count == 0xFFFF || cdSize == 0xFFFFFFFFL || cdOffset == 0xFFFFFFFFL) {
            long loc = eocd - 20;
            if (loc < 0 || seg.get(U32, loc) != ZIP64_LOCATOR)
                throw new CheckpointException(file, null, "zip64 archive without a zip64 end-of-central-directory locator (corrupt)");
            long rec = seg.get(U64, loc + 8);
            if (rec < 0 || rec + 56 > size || seg.get(U32, rec) != ZIP64_EOCD)
                throw new CheckpointException(file, null, "zip64 end-of-central-directory record at " + rec + " is missing (corrupt or truncated)");
            count = seg.get(U64, rec + 32);
            cdSize = seg.get(U64, rec + 40);
            cdOffset = seg.get(U64, rec + 48);
        }
        if (cdOffset < 0 || cdSize < 0 || cdOffset + cdSize > size || count < 0 || count > cdSize / 46 + 1)
            throw new CheckpointException(file, null, "zip central directory (" + count + " entries, " + cdSize + " bytes at "
                    + cdOffset + ") does not fit in the file of " + size + " bytes: truncated or corrupt");
        Map<String, Entry> out = new LinkedHashMap<>();
        long p = cdOffset;
        for (long i = 0; i < count; i++) {
            if (p + 46 > cdOffset + cdSize || seg.get(U32, p) != CENTRAL)
                throw new CheckpointException(file, null, "zip central directory entry " + i + " is corrupt");
            int flags = u16(seg, p + 8);
            int method = u16(seg, p + 10);
            long comp = u32(seg, p + 20), unc = u32(seg, p + 24);
            int nameLen = u16(seg, p + 28), extraLen = u16(seg, p + 30), commentLen = u16(seg, p + 32);
            long local = u32(seg, p + 42);
            long next = p + 46 + nameLen + extraLen + commentLen;
            if (next > cdOffset + cdSize) throw new CheckpointException(file, null, "zip central directory entry " + i + " is corrupt");
            byte[] nb = new byte[nameLen];
            MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, p + 46, nb, 0, nameLen);
            String name = new String(nb, StandardCharsets.UTF_8);
            // zip64 extended information: the 64-bit values of the fields that are 0xFFFFFFFF, in this order
            long e = p + 46 + nameLen, eEnd = e + extraLen;
            while (e + 4 <= eEnd) {
                int id = u16(seg, e), len = u16(seg, e + 2);
                if (id == 1) {
                    long q = e + 4;
                    if (unc == 0xFFFFFFFFL && q + 8 <= e + 4 + len) { unc = seg.get(U64, q); q += 8; }
                    if (comp == 0xFFFFFFFFL && q + 8 <= e + 4 + len) { comp = seg.get(U64, q); q += 8; }
                    if (local == 0xFFFFFFFFL && q + 8 <= e + 4 + len) { local = seg.get(U64, q); }
                }
                e += 4 + len;
            }
            if ((flags & 1) != 0) throw new CheckpointException(file, null, "zip entry '" + name + "' is encrypted");
            if (local < 0 || local + 30 > size || seg.get(U32, local) != LOCAL)
                throw new CheckpointException(file, null, "zip entry '" + name + "': local header at " + local
                        + " is missing: the file is truncated or corrupt");
            long data = local + 30 + u16(seg, local + 26) + u16(seg, local + 28);
            if (comp < 0 || unc < 0 || data + comp > size)
                throw new CheckpointException(file, null, "zip entry '" + name + "' (" + comp + " bytes at " + data
                        + ") reaches past the end of the file (" + size + " bytes): the file is truncated");
            if (method != 0 && method != 8)
                throw new CheckpointException(file, null, "zip entry '" + name + "' uses compression method " + method
                        + "; only STORED (0, as torch.save writes) and DEFLATED (8) are supported");
            if (method == 0 && comp != unc)
                throw new CheckpointException(file, null, "zip entry '" + name + "' is STORED but its sizes differ (" + comp + " vs " + unc + ")");
            out.put(name, new Entry(name, method, comp, unc, data));
            p = next;
        }
        return new TorchZip(file, seg, out);
    }

    private static boolean startsWithZip(MemorySegment seg) {
        return seg.byteSize() >= 4 && seg.get(U32, 0) == LOCAL;
    }

    /** The entry's bytes: a slice of the mapping for STORED entries, an inflated heap copy for DEFLATED ones. */
    MemorySegment data(Entry e) throws CheckpointException {
        if (e.method() == 0) return seg.asSlice(e.dataOffset(), e.size()).asReadOnly();
        if (e.size() > Integer.MAX_VALUE - 16) throw new CheckpointException(file, null, "zip entry '" + e.name()
                + "' is DEFLATED and larger than 2 GB; re-save the checkpoint with torch.save (which stores entries uncompressed)");
        byte[] in = seg.asSlice(e.dataOffset(), e.compressedSize()).toArray(ValueLayout.JAVA_BYTE);
        byte[] out = new byte[(int) e.size()];
        Inflater inf = new Inflater(true);
        try {
            inf.setInput(in);
            int n = 0;
            while (n < out.length && !inf.finished()) {
                int k = inf.inflate(out, n, out.length - n);
                if (k == 0 && (inf.needsInput() || inf.needsDictionary())) break;
                n += k;
            }
            if (n != out.length) throw new CheckpointException(file, null, "zip entry '" + e.name() + "' inflates to " + n
                    + " bytes, the directory says " + out.length);
        } catch (DataFormatException ex) {
            throw new CheckpointException(file, null, "zip entry '" + e.name() + "' is not valid DEFLATE data: " + ex.getMessage(), ex);
        } finally {
            inf.end();
        }
        return MemorySegment.ofArray(out).asReadOnly();
    }

    private static int u16(MemorySegment s, long p) { return s.get(U16, p) & 0xFFFF; }
    private static long u32(MemorySegment s, long p) { return s.get(U32, p) & 0xFFFFFFFFL; }
}
