package io.diffquant.engine.diffusion;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The 1000 ILSVRC-2012 class names in the standard index order (the sorted WordNet synset ids n01440764 ... n15075141
 * that ImageNet classifiers and the class-conditional DiT models use), one short name per class: the first lemma of
 * the synset (index 0 "tench", 207 "golden retriever", 388 "giant panda", 980 "volcano"). Two names repeat because
 * their synsets share a first lemma: "crane" (134 the bird, 517 the machine) and "maillot" (638, 639).
 */
public final class ImageNetClasses {
    private static final String RESOURCE = "imagenet-classes.txt";
    private static final List<String> NAMES = load();

    private ImageNetClasses() {}

    private static List<String> load() {
        try (InputStream in = ImageNetClasses.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IllegalStateException("resource " + RESOURCE + " is missing from the engine jar");
            List<String> out = new ArrayList<>();
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                for (String l; (l = r.readLine()) != null; ) if (!l.isBlank()) out.add(l.strip());
            }
            if (out.size() != 1000) throw new IllegalStateException(RESOURCE + " holds " + out.size() + " names, expected 1000");
            return List.copyOf(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int count() { return NAMES.size(); }

    /** All 1000 names, index = class label. */
    public static List<String> names() { return NAMES; }

    /** The name of class {@code index} (0..999). */
    public static String name(int index) {
        if (index < 0 || index >= NAMES.size()) throw new IllegalArgumentException("ImageNet class index " + index + " is outside [0, 999]");
        return NAMES.get(index);
    }

    /**
     * The class of a label given as an index ("207") or a name ("golden retriever", case-insensitive; a name that
     * appears twice resolves to its first index).
     */
    public static int parse(String label) {
        String s = label.strip();
        if (!s.isEmpty() && s.chars().allMatch(Character::isDigit)) {
            int i = Integer.parseInt(s);
            name(i);
            return i;
        }
        String want = s.toLowerCase(Locale.ROOT);
        for (int i = 0; i < NAMES.size(); i++) if (NAMES.get(i).toLowerCase(Locale.ROOT).equals(want)) return i;
        List<String> close = new ArrayList<>();
        for (String n : NAMES) if (n.toLowerCase(Locale.ROOT).contains(want)) close.add(n);
        throw new IllegalArgumentException("unknown ImageNet class '" + label + "'"
                + (close.isEmpty() ? "" : "; names containing it: " + (close.size() > 8 ? close.subList(0, 8) + " ..." : close)));
    }
}
