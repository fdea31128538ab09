package io.diffquant.engine.arch;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** ARCHITECTURE.md rules: the engine imports no JavaFX and no TornadoVM, and prints nothing. */
class EngineRulesTest {
    private static final Pattern FORBIDDEN = Pattern.compile(
            "^\\s*import\\s+(static\\s+)?(javafx\\.|uk\\.ac\\.manchester\\.tornado\\.|picocli\\.)|System\\.(out|err)\\b|printStackTrace\\(");

    @Test void engineSourcesFollowTheRules() throws IOException {
        Path src = Path.of("src/main/java");
        assertTrue(Files.isDirectory(src), "run from the engine module directory: " + src.toAbsolutePath());
        List<String> violations = new ArrayList<>();
        try (Stream<Path> files = Files.walk(src)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".java"))::iterator) {
                List<String> lines = Files.readAllLines(f);
                for (int i = 0; i < lines.size(); i++) {
                    String line = lines.get(i);
                    String code = line.strip();
                    if (code.startsWith("//") || code.startsWith("*") || code.startsWith("/*")) continue;
                    if (FORBIDDEN.matcher(line).find()) violations.add(src.relativize(f) + ":" + (i + 1) + ": " + code);
                }
            }
        }
        assertTrue(violations.isEmpty(), "engine rule violations:\n" + String.join("\n", violations));
    }
}
