package io.diffquant.app.gui.view;

import javafx.util.StringConverter;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The calibration-images spinner's text conversion (no toolkit needed). */
class MethodBarTest {
    private final StringConverter<Integer> c = MethodBar.calibrationImagesConverter(() -> 24);

    @Test void zeroReadsDefault() {
        assertEquals("default", c.toString(0));
        assertEquals("default", c.toString(null));
        assertEquals("64", c.toString(64));
    }

    @Test void typedTextBecomesACount() {
        assertEquals(0, c.fromString("default"));
        assertEquals(0, c.fromString(" Default "));
        assertEquals(0, c.fromString(""));
        assertEquals(0, c.fromString(null));
        assertEquals(16, c.fromString(" 16 "));
        assertEquals(1024, c.fromString("5000"), "clamped to the spinner's maximum");
        assertEquals(0, c.fromString("-3"), "clamped to 0 (= the method's default)");
    }

    @Test void notANumberKeepsTheCurrentValue() {
        assertEquals(24, c.fromString("abc"));
        assertEquals(24, c.fromString("12x"));
        assertEquals(24, c.fromString("99999999999"), "beyond int: not a number");
    }
}
