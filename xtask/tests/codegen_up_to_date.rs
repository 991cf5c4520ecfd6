//! Regenerating the protocol code from Kafka's specs must reproduce the committed files byte
//! for byte. Skipped (with a message) when the specs directory is not present.

use std::path::PathBuf;

use xtask::codegen;

#[test]
fn generated_code_matches_committed_files() {
    let root = codegen::workspace_root();
    let specs = std::env::var_os("BASALT_KAFKA_SPECS")
        .map(PathBuf::from)
        .unwrap_or_else(|| codegen::default_specs_dir(&root));
    if !specs.is_dir() {
        println!(
            "skipped: Kafka message specs not found at {}",
            specs.display()
        );
        return;
    }
    let files = codegen::generate(&specs, &root).expect("generation succeeds");
    assert!(files.len() > 100, "only {} files generated", files.len());
    let problems = codegen::diff(&root, &files);
    assert!(
        problems.is_empty(),
        "generated code is stale (run `cargo xtask codegen`):\n{}",
        problems.join("\n")
    );
}
