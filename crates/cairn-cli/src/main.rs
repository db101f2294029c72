//! `cairn`: inspect and run ONNX models with the Cairn engine.

mod app;
mod diff;
mod eval;
mod eval_widths;
mod fidelity;
mod fsutil;
mod import;
mod inputs_dir;
mod inspect;
mod malloc_tuning;
mod missing_ops;
mod model;
mod npy;
mod optimize;
mod pack;
mod progress;
mod random;
mod report;
mod run;
mod sensitivity;
mod serve;
mod text;
mod verify;
mod widths;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: ship ONNX models in offline-first web apps",
    long_about = "Cairn turns a trained ONNX model into something a web app can ship and run offline.\n\n\
Start with `cairn inspect model.onnx` to see what a model needs, then\n\
`cairn run model.onnx --random` to check that Cairn runs it, and\n\
`cairn pack model.onnx -o dist/models/NAME` to make the bundle a web app loads.",
    after_help = "Examples:\n  cairn inspect mobilenetv2.onnx\n  cairn inspect mobilenetv2.onnx --json --dim batch=4\n  cairn run mobilenetv2.onnx --input input=cat.npy --output logits.npy\n  cairn run mobilenetv2.onnx --random --runs 20\n  cairn pack mobilenetv2.onnx -o dist/models/mobilenetv2 --image-size 224\n  cairn verify dist/models/mobilenetv2\n  cairn run dist/models/mobilenetv2 --random\n  cairn ops"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Inspect(inspect::InspectArgs),
    Run(run::RunArgs),
    Pack(pack::PackArgs),
    Verify(verify::VerifyArgs),
    Diff(diff::DiffArgs),
    /// Build a web app around a model bundle (`cairn app build --model DIR -o dist`).
    App(app::AppArgs),
    Serve(serve::ServeArgs),
    /// Fold, prune or quantize a model to int8 and write the smaller ONNX file (`cairn optimize m.onnx -o m.int8.onnx --quantize int8 --calibrate DIR`)
    Optimize(optimize::OptimizeArgs),
    /// Measure how closely an optimized model follows its original on real inputs: top-1 agreement, KL, per-layer error
    Eval(eval::EvalArgs),
    Tokenize(text::TokenizeArgs),
    Embed(text::EmbedArgs),
    Classify(text::ClassifyArgs),
    /// List the operators Cairn implements (`--markdown` writes SUPPORTED_OPS.md's content).
    Ops {
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::main(args),
        Command::Run(args) => run::main(args),
        Command::Pack(args) => pack::main(args),
        Command::Verify(args) => verify::main(args),
        Command::Diff(args) => diff::main(args),
        Command::App(args) => app::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Optimize(args) => optimize::main(args),
        Command::Eval(args) => eval::main(args),
        Command::Tokenize(args) => text::tokenize_main(args),
        Command::Embed(args) => text::embed_main(args),
        Command::Classify(args) => text::classify_main(args),
        Command::Ops { markdown } => report::print_ops(markdown),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report::print_error(&err);
            ExitCode::FAILURE
        }
    }
}
