//! `cargo xtask` entry point.
//!
//! Usage: `cargo xtask codegen [--check] [--specs DIR]`. The specs directory defaults to
//! `$BASALT_KAFKA_SPECS` or `../shared/kafka-message-specs` relative to the workspace root.
//! `--check` writes nothing and exits non-zero if the committed files differ from what the
//! generator produces.

use std::path::PathBuf;
use std::process::ExitCode;

use xtask::codegen;

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask codegen [--check] [--specs DIR]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("codegen") => {}
        _ => return usage(),
    }
    let root = codegen::workspace_root();
    let mut check = false;
    let mut specs: Option<PathBuf> = std::env::var_os("BASALT_KAFKA_SPECS").map(PathBuf::from);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--check" => check = true,
            "--specs" => match args.next() {
                Some(d) => specs = Some(PathBuf::from(d)),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let specs = specs.unwrap_or_else(|| codegen::default_specs_dir(&root));
    if !specs.is_dir() {
        eprintln!(
            "specs directory {} not found (use --specs or BASALT_KAFKA_SPECS)",
            specs.display()
        );
        return ExitCode::FAILURE;
    }
    let files = match codegen::generate(&specs, &root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("codegen failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        let problems = codegen::diff(&root, &files);
        if problems.is_empty() {
            println!("generated code is up to date ({} files)", files.len());
            ExitCode::SUCCESS
        } else {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("generated code is stale: run `cargo xtask codegen`");
            ExitCode::FAILURE
        }
    } else {
        match codegen::write(&root, &files) {
            Ok(()) => {
                println!("wrote {} files", files.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("writing failed: {e}");
                ExitCode::FAILURE
            }
        }
    }
}
