//! The Kafka message code generator: reads Kafka's JSON message specs and writes
//! `crates/basalt-protocol/src/generated/*.rs` plus the round-trip test samples.
//!
//! Message selection: every request/response pair in `kafka-4.2`, plus the pairs that only exist
//! in `kafka-trunk-2024-10` and are served by brokers (`listeners` includes `broker`), plus
//! `ControlledShutdown`; where both sets define an API key, `kafka-4.2` wins. The definitions in
//! `xtask/specs` (this repository's own, for versions neither set has: the stable v1 share-group
//! messages of KIP-932) win over both. The standalone
//! consumer-protocol data structures are generated too. Request and response headers are
//! hand-written in `basalt-protocol` (their `ClientId` encoding is a special case).
//!
//! Output is deterministic and formatted with `rustfmt` using the workspace `rustfmt.toml`, so
//! `--check` can compare it byte for byte with the committed files.

pub mod emit;
pub mod spec;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use emit::{MessageGen, fmt_versions, range_expr, snake};
use spec::{Kind, MessageSpec};

/// Where generated message modules go, relative to the workspace root.
pub const GENERATED_DIR: &str = "crates/basalt-protocol/src/generated";
/// Where the generated test samples go, relative to the workspace root.
pub const SAMPLES_FILE: &str = "crates/basalt-protocol/tests/it/samples.rs";

const NEWER: &str = "kafka-4.2";
const OLDER: &str = "kafka-trunk-2024-10";
const DATA_MESSAGES: &[&str] = &["ConsumerProtocolAssignment", "ConsumerProtocolSubscription"];
const EXTRA_OLDER_APIS: &[&str] = &["ControlledShutdownRequest"];
/// The repository's own message definitions, relative to the workspace root.
pub const LOCAL_SPECS: &str = "xtask/specs";

/// The default location of the specs, relative to the workspace root.
pub fn default_specs_dir(root: &Path) -> PathBuf {
    root.join("../shared/kafka-message-specs")
}

/// The workspace root (the parent of the `xtask` crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

struct Loaded {
    spec: MessageSpec,
    origin: String,
}

fn load_dir(dir: &Path, label: &str) -> Result<Vec<Loaded>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let spec = spec::load_spec(p)?;
            let file = p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Loaded {
                spec,
                origin: format!("{label}/{file}"),
            })
        })
        .collect()
}

struct Api {
    key: i16,
    name: String,
    request: Loaded,
    response: Loaded,
}

fn select(specs_dir: &Path, root: &Path) -> Result<(Vec<Api>, Vec<Loaded>), String> {
    let mut newer = load_dir(&root.join(LOCAL_SPECS), LOCAL_SPECS)?;
    let local: Vec<String> = newer.iter().map(|l| l.spec.name.clone()).collect();
    newer.extend(
        load_dir(&specs_dir.join(NEWER), NEWER)?
            .into_iter()
            .filter(|l| !local.contains(&l.spec.name)),
    );
    let older = load_dir(&specs_dir.join(OLDER), OLDER)?;
    let mut requests: BTreeMap<i16, Loaded> = BTreeMap::new();
    let mut responses: BTreeMap<i16, Loaded> = BTreeMap::new();
    let mut data = Vec::new();
    for l in newer {
        match (l.spec.kind, l.spec.api_key) {
            (Kind::Request, Some(k)) => {
                requests.insert(k, l);
            }
            (Kind::Response, Some(k)) => {
                responses.insert(k, l);
            }
            (Kind::Data, _) if DATA_MESSAGES.contains(&l.spec.name.as_str()) => data.push(l),
            _ => {}
        }
    }
    let mut older_responses: BTreeMap<i16, Loaded> = BTreeMap::new();
    let mut older_requests = Vec::new();
    for l in older {
        match (l.spec.kind, l.spec.api_key) {
            (Kind::Request, Some(k)) if !requests.contains_key(&k) => {
                let broker = l.spec.listeners.iter().any(|x| x == "broker");
                if broker || EXTRA_OLDER_APIS.contains(&l.spec.name.as_str()) {
                    older_requests.push((k, l));
                }
            }
            (Kind::Response, Some(k)) if !responses.contains_key(&k) => {
                older_responses.insert(k, l);
            }
            _ => {}
        }
    }
    for (k, l) in older_requests {
        let resp = older_responses
            .remove(&k)
            .ok_or_else(|| format!("{OLDER}: no response for API key {k}"))?;
        requests.insert(k, l);
        responses.insert(k, resp);
    }
    let mut apis = Vec::new();
    for (k, request) in requests {
        let response = responses
            .remove(&k)
            .ok_or_else(|| format!("no response for API key {k}"))?;
        let name = request
            .spec
            .name
            .strip_suffix("Request")
            .ok_or_else(|| format!("request {} not named *Request", request.spec.name))?
            .to_string();
        apis.push(Api {
            key: k,
            name,
            request,
            response,
        });
    }
    Ok((apis, data))
}

/// Generates every output file (path relative to the workspace root, formatted contents).
pub fn generate(specs_dir: &Path, root: &Path) -> Result<BTreeMap<String, String>, String> {
    let (apis, data) = select(specs_dir, root)?;
    let mut files = BTreeMap::new();
    let mut samples = String::new();
    let mut sample_checks = String::new();
    let mut modules: Vec<(String, String)> = Vec::new();

    let mut emit_one = |l: &Loaded, extra: &str, files: &mut BTreeMap<String, String>| {
        let g = MessageGen::new(&l.spec, l.origin.clone())?;
        let src = g.emit_module(extra)?;
        files.insert(format!("{GENERATED_DIR}/{}.rs", g.module), src);
        g.emit_samples(&mut samples)?;
        modules.push((g.module.clone(), l.spec.name.clone()));
        let _ = writeln!(
            sample_checks,
            "for version in {m}::{n}::VALID_VERSIONS.min..={m}::{n}::VALID_VERSIONS.max {{\n\
             check(\"{n}\", version, crate::roundtrip::check_sample({f}(version), version));\n\
             check(\"{n}\", version, crate::roundtrip::check_default::<{m}::{n}>(version));\n}}",
            m = g.module,
            n = l.spec.name,
            f = emit::sample_fn(&g.module, &l.spec.name),
        );
        Ok::<(), String>(())
    };
    for api in &apis {
        let extra = format!(
            "impl Request for {} {{\nconst API_KEY: i16 = {};\ntype Response = super::{};\n}}\n",
            api.request.spec.name, api.key, api.response.spec.name
        );
        emit_one(&api.request, &extra, &mut files)?;
        emit_one(&api.response, "", &mut files)?;
    }
    for l in &data {
        emit_one(l, "", &mut files)?;
    }
    files.insert(format!("{GENERATED_DIR}/mod.rs"), emit_mod(&apis, &modules));
    files.insert(
        SAMPLES_FILE.to_string(),
        emit_samples_file(&samples, &sample_checks),
    );

    let config = root.join("rustfmt.toml");
    let mut out = BTreeMap::new();
    for (path, src) in files {
        out.insert(path, rustfmt(&src, &config)?);
    }
    Ok(out)
}

fn emit_mod(apis: &[Api], modules: &[(String, String)]) -> String {
    let mut o = String::new();
    o.push_str(
        "//! Every Kafka message Basalt speaks, with the [`ApiKey`] table and the\n\
         //! [`RequestBody`] / [`ResponseBody`] dispatch enums.\n\
         //!\n\
         //! Generated by `cargo xtask codegen` from Kafka's message specs. Do not edit.\n\
         //!\n\
         //! One module per message holds the message struct and its nested structures (named as\n\
         //! in the spec, e.g. [`produce_request::TopicProduceData`]).\n\n",
    );
    o.push_str("use bytes::Bytes;\n\n");
    o.push_str("use crate::codec::{DecodeError, EncodeError};\n");
    o.push_str("use crate::encoder::Encoder;\n");
    o.push_str("use crate::types::VersionRange;\n\n");
    for (m, _) in modules {
        let _ = writeln!(o, "pub mod {m};");
    }
    o.push('\n');
    for (m, n) in modules {
        let _ = writeln!(o, "pub use {m}::{n};");
    }
    o.push('\n');

    // ApiKey.
    o.push_str(
        "/// The API keys of every request this crate can decode.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n\
         #[repr(i16)]\n\
         pub enum ApiKey {\n",
    );
    for a in apis {
        let _ = writeln!(
            o,
            "/// `{}` (key {}).\n{} = {},",
            a.name, a.key, a.name, a.key
        );
    }
    o.push_str("}\n\n");
    o.push_str("impl ApiKey {\n");
    o.push_str("/// Every API key, in key order.\npub const ALL: &'static [ApiKey] = &[\n");
    for a in apis {
        let _ = writeln!(o, "ApiKey::{},", a.name);
    }
    o.push_str("];\n\n");
    o.push_str(
        "/// The API key with numeric value `key`, if known.\n\
         pub const fn from_i16(key: i16) -> Option<ApiKey> {\nmatch key {\n",
    );
    for a in apis {
        let _ = writeln!(o, "{} => Some(ApiKey::{}),", a.key, a.name);
    }
    o.push_str("_ => None,\n}\n}\n\n");
    o.push_str("/// The numeric key.\npub const fn key(self) -> i16 {\nself as i16\n}\n\n");
    let table = |o: &mut String, doc: &str, sig: &str, f: &dyn Fn(&Api) -> String| {
        let _ = writeln!(o, "/// {doc}\npub const fn {sig} {{\nmatch self {{");
        for a in apis {
            let _ = writeln!(o, "ApiKey::{} => {},", a.name, f(a));
        }
        o.push_str("}\n}\n\n");
    };
    table(
        &mut o,
        "The API's name, e.g. `\"Produce\"`.",
        "name(self) -> &'static str",
        &|a| format!("\"{}\"", a.name),
    );
    table(
        &mut o,
        "The request versions the spec defines.",
        "valid_versions(self) -> VersionRange",
        &|a| range_expr(a.request.spec.valid),
    );
    table(
        &mut o,
        "The request versions that use the flexible encoding (and request header v2).",
        "request_flexible_versions(self) -> VersionRange",
        &|a| range_expr(a.request.spec.flexible),
    );
    table(
        &mut o,
        "The response versions that use the flexible encoding (and response header v1).",
        "response_flexible_versions(self) -> VersionRange",
        &|a| range_expr(a.response.spec.flexible),
    );
    table(
        &mut o,
        "Whether the spec marks the latest request version as unstable.",
        "latest_version_unstable(self) -> bool",
        &|a| a.request.spec.latest_version_unstable.to_string(),
    );
    o.push_str("}\n\n");
    o.push_str(
        "impl TryFrom<i16> for ApiKey {\ntype Error = i16;\n\n\
         fn try_from(key: i16) -> Result<Self, i16> {\nApiKey::from_i16(key).ok_or(key)\n}\n}\n\n\
         impl std::fmt::Display for ApiKey {\n\
         fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {\n\
         f.write_str(self.name())\n}\n}\n\n",
    );

    for (kind, enum_name, suffix) in [
        ("request", "RequestBody", "Request"),
        ("response", "ResponseBody", "Response"),
    ] {
        let _ = writeln!(
            o,
            "/// The body of any {kind}, tagged by API.\n\
             #[derive(Debug, Clone, PartialEq)]\n\
             #[allow(clippy::large_enum_variant)]\n\
             pub enum {enum_name} {{"
        );
        for a in apis {
            let spec = if suffix == "Request" {
                &a.request.spec
            } else {
                &a.response.spec
            };
            let _ = writeln!(
                o,
                "/// A `{}` (versions {}).\n{}({}{suffix}),",
                spec.name,
                fmt_versions(spec.valid),
                a.name,
                a.name
            );
        }
        o.push_str("}\n\n");
        let _ = writeln!(o, "impl {enum_name} {{");
        o.push_str(
            "/// The API this body belongs to.\npub fn api_key(&self) -> ApiKey {\nmatch self {\n",
        );
        for a in apis {
            let _ = writeln!(o, "Self::{}(_) => ApiKey::{},", a.name, a.name);
        }
        o.push_str("}\n}\n\n");
        let _ = writeln!(
            o,
            "/// Decodes the {kind} body of `api_key` at `version` from the front of `buf`.\n\
             pub fn decode(api_key: ApiKey, version: i16, buf: &mut Bytes) -> Result<Self, DecodeError> {{\n\
             Ok(match api_key {{"
        );
        for a in apis {
            let _ = writeln!(
                o,
                "ApiKey::{n} => Self::{n}({n}{suffix}::decode(buf, version)?),",
                n = a.name
            );
        }
        o.push_str("})\n}\n\n");
        o.push_str(
            "/// Appends the body encoded at `version` to `buf`.\n\
             pub fn encode(&self, buf: &mut Encoder, version: i16) -> Result<(), EncodeError> {\n\
             match self {\n",
        );
        for a in apis {
            let _ = writeln!(o, "Self::{}(m) => m.encode(buf, version),", a.name);
        }
        o.push_str("}\n}\n}\n\n");
        for a in apis {
            let _ = writeln!(
                o,
                "impl From<{n}{suffix}> for {enum_name} {{\nfn from(m: {n}{suffix}) -> Self {{\nSelf::{n}(m)\n}}\n}}\n",
                n = a.name
            );
        }
    }
    o
}

fn emit_samples_file(samples: &str, checks: &str) -> String {
    let mut o = String::new();
    o.push_str(
        "//! Populated sample values of every generated structure, one constructor per structure\n\
         //! and version, used by the round-trip tests: every field that exists at the version\n\
         //! holds a non-default value, and flexible versions carry an unknown tagged field.\n\
         //!\n\
         //! Generated by `cargo xtask codegen` from Kafka's message specs. Do not edit.\n\n\
         #![allow(non_snake_case, unused_mut, clippy::field_reassign_with_default)]\n\n\
         use basalt_protocol::messages::*;\n\
         use basalt_protocol::{RawTaggedField, Records, Uuid};\n\
         use bytes::Bytes;\n\n",
    );
    o.push_str(samples);
    o.push_str(
        "/// Round-trips the sample and the default value of every message at every valid\n\
         /// version, reporting each outcome to `check`.\n\
         pub fn check_all(check: &mut dyn FnMut(&'static str, i16, Result<(), String>)) {\n",
    );
    o.push_str(checks);
    o.push_str("}\n");
    o
}

fn rustfmt(src: &str, config: &Path) -> Result<String, String> {
    let mut cmd = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()));
    cmd.args(["--edition", "2024", "--emit", "stdout"]);
    if config.exists() {
        cmd.arg("--config-path").arg(config);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("rustfmt stdin")?;
    let input = src.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    writer
        .join()
        .map_err(|_| "rustfmt writer panicked".to_string())?
        .map_err(|e| format!("rustfmt stdin: {e}"))?;
    if !output.status.success() {
        let dump = std::env::temp_dir().join("basalt-codegen-rustfmt-input.rs");
        let _ = std::fs::write(&dump, src);
        return Err(format!(
            "rustfmt failed (input saved to {}): {}",
            dump.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("rustfmt output: {e}"))
}

/// Differences between generated files and those on disk (paths relative to `root`), including
/// stale files in the generated directory.
pub fn diff(root: &Path, files: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, content) in files {
        match std::fs::read_to_string(root.join(path)) {
            Ok(existing) if existing == *content => {}
            Ok(_) => problems.push(format!("{path} differs")),
            Err(_) => problems.push(format!("{path} is missing")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(root.join(GENERATED_DIR)) {
        for e in entries.flatten() {
            let rel = format!("{GENERATED_DIR}/{}", e.file_name().to_string_lossy());
            if !files.contains_key(&rel) {
                problems.push(format!("{rel} is not generated any more"));
            }
        }
    }
    problems.sort();
    problems
}

/// Writes the generated files, removing stale ones from the generated directory.
pub fn write(root: &Path, files: &BTreeMap<String, String>) -> Result<(), String> {
    let dir = root.join(GENERATED_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let rel = format!("{GENERATED_DIR}/{}", e.file_name().to_string_lossy());
            if !files.contains_key(&rel) {
                std::fs::remove_file(e.path()).map_err(|err| format!("{rel}: {err}"))?;
            }
        }
    }
    for (path, content) in files {
        let full = root.join(path);
        if std::fs::read_to_string(&full).is_ok_and(|c| c == *content) {
            continue;
        }
        std::fs::write(&full, content).map_err(|e| format!("{}: {e}", full.display()))?;
    }
    Ok(())
}

/// Returns a snake-case module name for a message (exposed for tests).
pub fn module_name(message: &str) -> String {
    snake(message)
}
