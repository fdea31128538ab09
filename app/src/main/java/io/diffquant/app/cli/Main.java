package io.diffquant.app.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of {@code bin/diffquant}: the only place that prints. */
@Command(name = "diffquant", mixinStandardHelpOptions = true, version = "DiffQuant Studio 0.1.0",
        description = "Post-training quantization laboratory for diffusion models.",
        subcommands = {StudioCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Main()).execute(args));
    }
}
