//! Rust code emission for one message spec: struct definitions, `Default`, `decode`, `encode`,
//! and a test-sample constructor.
//!
//! Version conditions are emitted relative to the versions in which a piece of code can run (the
//! "context"): a field present in every context version is read unconditionally, one present in
//! none is never read, and otherwise a plain comparison on `version` is emitted.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::spec::{Field, MessageSpec, Ty, Versions};

/// A version condition relative to a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Always,
    Never,
    Expr(String),
}

impl Cond {
    /// Versions of `ctx` that are in `f`.
    pub fn within(f: Versions, ctx: Versions) -> Cond {
        let i = f.intersect(ctx);
        if i.is_empty() {
            return Cond::Never;
        }
        if ctx.is_subset_of(f) {
            return Cond::Always;
        }
        let lower = i.min > ctx.min;
        let upper = i.max < ctx.max;
        Cond::Expr(match (lower, upper) {
            (true, true) if i.min == i.max => format!("version == {}", i.min),
            (true, true) => format!("({}..={}).contains(&version)", i.min, i.max),
            (true, false) => format!("version >= {}", i.min),
            (false, true) => format!("version <= {}", i.max),
            (false, false) => return Cond::Always,
        })
    }

    /// Versions of `ctx` that are not in `f`.
    pub fn outside(f: Versions, ctx: Versions) -> Cond {
        let i = f.intersect(ctx);
        if i.is_empty() {
            return Cond::Always;
        }
        if ctx.is_subset_of(f) {
            return Cond::Never;
        }
        let below = i.min > ctx.min;
        let above = i.max < ctx.max;
        Cond::Expr(match (below, above) {
            (true, true) => format!("!({}..={}).contains(&version)", i.min, i.max),
            (true, false) => format!("version < {}", i.min),
            (false, true) => format!("version > {}", i.max),
            (false, false) => return Cond::Never,
        })
    }

    /// The condition as a boolean expression.
    pub fn code(&self) -> String {
        match self {
            Cond::Always => "true".into(),
            Cond::Never => "false".into(),
            Cond::Expr(e) => e.clone(),
        }
    }

    /// `self && other_expr`, simplified.
    fn and(&self, other: &str) -> Option<String> {
        match self {
            Cond::Always => Some(other.to_string()),
            Cond::Never => None,
            Cond::Expr(e) => Some(format!("{e} && {other}")),
        }
    }
}

/// Converts a spec name (PascalCase) to snake_case.
pub fn snake(name: &str) -> String {
    let name = name.replace("KRaft", "Kraft");
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 {
                chars.get(i - 1).copied()
            } else {
                None
            };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
    "typeof", "unsized", "virtual", "yield", "try",
];

/// The Rust identifier for a field.
pub fn field_ident(name: &str) -> String {
    let s = snake(name);
    if KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

/// Escapes spec "about" text for a doc comment.
pub fn doc_text(about: &str) -> String {
    let mut out = String::new();
    for c in about.trim().chars() {
        match c {
            '[' | ']' | '<' | '>' | '*' | '`' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn doc(out: &mut String, about: &str, fallback: &str) {
    let text = doc_text(about);
    let text = if text.is_empty() {
        fallback.to_string()
    } else {
        text
    };
    let _ = writeln!(out, "/// {text}");
}

/// One structure of a message (the message itself, an inline struct or a common struct).
#[derive(Debug, Clone)]
pub struct StructInfo {
    pub name: String,
    pub about: String,
    pub fields: Vec<Field>,
    /// Versions in which this structure can be decoded or encoded.
    pub ctx: Versions,
    pub top: bool,
}

/// A message with its structures resolved.
pub struct MessageGen<'a> {
    pub spec: &'a MessageSpec,
    pub origin: String,
    pub module: String,
    pub structs: Vec<StructInfo>,
    index: HashMap<String, usize>,
}

impl<'a> MessageGen<'a> {
    pub fn new(spec: &'a MessageSpec, origin: String) -> Result<Self, String> {
        let mut g = MessageGen {
            spec,
            origin,
            module: snake(&spec.name),
            structs: Vec::new(),
            index: HashMap::new(),
        };
        g.add_struct(StructInfo {
            name: spec.name.clone(),
            about: String::new(),
            fields: spec.fields.clone(),
            ctx: spec.valid,
            top: true,
        })?;
        let top_fields = spec.fields.clone();
        g.collect_inline(&top_fields)?;
        for cs in &spec.common_structs {
            g.add_struct(StructInfo {
                name: cs.name.clone(),
                about: format!("Common structure `{}`, shared by several fields.", cs.name),
                fields: cs.fields.clone(),
                ctx: Versions::NONE,
                top: false,
            })?;
            g.collect_inline(&cs.fields)?;
        }
        g.resolve_contexts()?;
        Ok(g)
    }

    fn add_struct(&mut self, s: StructInfo) -> Result<(), String> {
        if self.index.contains_key(&s.name) {
            return Err(format!("{}: duplicate struct {}", self.spec.name, s.name));
        }
        if [
            "Bytes",
            "BytesMut",
            "Uuid",
            "RawTaggedField",
            "Option",
            "Result",
            "Vec",
            "String",
        ]
        .contains(&s.name.as_str())
        {
            return Err(format!(
                "{}: struct name {} collides",
                self.spec.name, s.name
            ));
        }
        self.index.insert(s.name.clone(), self.structs.len());
        self.structs.push(s);
        Ok(())
    }

    fn collect_inline(&mut self, fields: &[Field]) -> Result<(), String> {
        for f in fields {
            if f.flexible_override.is_some() {
                return Err(format!(
                    "{}.{}: field-level flexibleVersions is not supported",
                    self.spec.name, f.name
                ));
            }
            if let Some(inner) = &f.fields {
                let name = struct_name(&f.ty).ok_or_else(|| {
                    format!("{}.{}: fields on non-struct", self.spec.name, f.name)
                })?;
                self.add_struct(StructInfo {
                    name: name.to_string(),
                    about: f.about.clone(),
                    fields: inner.clone(),
                    ctx: Versions::NONE,
                    top: false,
                })?;
                self.collect_inline(inner)?;
            }
        }
        Ok(())
    }

    fn resolve_contexts(&mut self) -> Result<(), String> {
        loop {
            let mut changed = false;
            for i in 0..self.structs.len() {
                let ctx = self.structs[i].ctx;
                let fields = self.structs[i].fields.clone();
                for f in &fields {
                    if let Some(name) = struct_name(&f.ty) {
                        let j = *self.index.get(name).ok_or_else(|| {
                            format!("{}: unknown struct type {name}", self.spec.name)
                        })?;
                        let new = self.structs[j].ctx.hull(f.versions.intersect(ctx));
                        if new != self.structs[j].ctx {
                            self.structs[j].ctx = new;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        // A structure only used in versions outside the valid range keeps its own field versions
        // so its code is still well-formed.
        for s in &mut self.structs {
            if s.ctx.is_empty() {
                s.ctx = s
                    .fields
                    .iter()
                    .fold(Versions::NONE, |a, f| a.hull(f.versions));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> &StructInfo {
        &self.structs[self.index[name]]
    }

    /// Whether a structure (transitively) holds a float, which rules out `Eq`.
    fn has_float(&self, s: &StructInfo) -> bool {
        s.fields.iter().any(|f| match elem(&f.ty) {
            Ty::Float64 => true,
            Ty::Struct(n) => self.has_float(self.get(n)),
            _ => false,
        })
    }

    fn has_tag_section(&self, s: &StructInfo) -> bool {
        !self.spec.flexible.intersect(s.ctx).is_empty()
    }

    fn flexible_cond(&self, s: &StructInfo) -> Cond {
        Cond::within(self.spec.flexible, s.ctx)
    }

    fn field_path(&self, s: &StructInfo, f: &Field) -> String {
        if s.top {
            format!("\"{}.{}\"", s.name, f.name)
        } else {
            format!("\"{}/{}.{}\"", self.spec.name, s.name, f.name)
        }
    }

    fn struct_path(&self, s: &StructInfo) -> String {
        if s.top {
            format!("\"{}\"", s.name)
        } else {
            format!("\"{}/{}\"", self.spec.name, s.name)
        }
    }

    /// Minimum encoded size of a structure at `v`.
    fn min_size(&self, s: &StructInfo, v: i16) -> usize {
        let flex = self.spec.flexible.contains(v);
        let mut n = usize::from(flex);
        for f in &s.fields {
            if !f.versions.contains(v) || f.tagged.contains(v) {
                continue;
            }
            n += match &f.ty {
                Ty::String => {
                    if flex {
                        1
                    } else {
                        2
                    }
                }
                Ty::Bytes | Ty::Records | Ty::Array(_) => {
                    if flex {
                        1
                    } else {
                        4
                    }
                }
                Ty::Struct(name) => {
                    if f.nullable.contains(v) {
                        1
                    } else {
                        self.min_size(self.get(name), v)
                    }
                }
                t => t.fixed_size().unwrap_or(1),
            };
        }
        n
    }

    /// Minimum encoded size of one element of array field `f` over the versions `pctx`.
    fn min_element_size(&self, f: &Field, pctx: Versions) -> usize {
        let bound = Versions {
            min: 0,
            max: self.spec.valid.max.max(pctx.min),
        };
        let e = elem(&f.ty);
        let n = match e {
            Ty::Struct(name) => {
                let s = self.get(name);
                pctx.iter_within(bound)
                    .map(|v| self.min_size(s, v))
                    .min()
                    .unwrap_or(1)
            }
            Ty::String => {
                if pctx
                    .iter_within(bound)
                    .any(|v| self.spec.flexible.contains(v))
                {
                    1
                } else {
                    2
                }
            }
            Ty::Bytes | Ty::Records | Ty::Array(_) => 1,
            t => t.fixed_size().unwrap_or(1),
        };
        n.max(1)
    }

    fn rust_type(&self, f: &Field) -> String {
        let nullable = !f.nullable.is_empty();
        let opt = |t: String| if nullable { format!("Option<{t}>") } else { t };
        match &f.ty {
            Ty::Records if self.spec.kind == super::spec::Kind::Response => {
                "Option<Records>".into()
            }
            Ty::Records => "Option<Bytes>".into(),
            Ty::Array(e) => opt(format!("Vec<{}>", scalar_type(e))),
            t => opt(scalar_type(t)),
        }
    }

    fn default_expr(&self, f: &Field) -> Result<String, String> {
        let d = f.default.as_deref();
        let nullable = !f.nullable.is_empty();
        let is_null = d == Some("null");
        if is_null && !nullable && f.ty != Ty::Records {
            return Err(format!(
                "{}.{}: null default on non-nullable field",
                self.spec.name, f.name
            ));
        }
        Ok(match &f.ty {
            Ty::Bool => match d {
                Some(s) if s.eq_ignore_ascii_case("true") => "true".into(),
                _ => "false".into(),
            },
            Ty::Int8 | Ty::Int16 | Ty::Uint16 | Ty::Int32 | Ty::Uint32 | Ty::Int64 => {
                int_default(d, &f.ty).map_err(|e| format!("{}.{}: {e}", self.spec.name, f.name))?
            }
            Ty::Float64 => match d {
                Some(s) => {
                    let v: f64 = s.parse().map_err(|e| format!("{}: {e}", f.name))?;
                    format!("{v:?}")
                }
                None => "0.0".into(),
            },
            Ty::Uuid => "Uuid::ZERO".into(),
            Ty::String => {
                let lit = match d {
                    None | Some("") => "String::new()".to_string(),
                    Some(s) => format!("String::from({s:?})"),
                };
                match (nullable, is_null) {
                    (true, true) => "None".into(),
                    (true, false) => format!("Some({lit})"),
                    (false, _) => lit,
                }
            }
            Ty::Bytes => match (nullable, is_null) {
                (true, true) => "None".into(),
                (true, false) => "Some(Bytes::new())".into(),
                (false, _) => "Bytes::new()".into(),
            },
            Ty::Records => "None".into(),
            Ty::Struct(n) => match (nullable, is_null) {
                (true, true) => "None".into(),
                (true, false) => format!("Some({n}::default())"),
                (false, _) => format!("{n}::default()"),
            },
            Ty::Array(_) => match (nullable, is_null) {
                (true, true) => "None".into(),
                (true, false) => "Some(Vec::new())".into(),
                (false, _) => "Vec::new()".into(),
            },
        })
    }

    /// An expression that is true when the field at `access` differs from its default.
    fn non_default(&self, f: &Field, access: &str) -> Result<String, String> {
        let d = self.default_expr(f)?;
        Ok(match (&f.ty, d.as_str()) {
            (Ty::Bool, "false") => access.to_string(),
            (Ty::Bool, _) => format!("!{access}"),
            (_, "None") => format!("{access}.is_some()"),
            (_, "String::new()" | "Bytes::new()" | "Vec::new()") => format!("!{access}.is_empty()"),
            (_, "Some(String::new())" | "Some(Bytes::new())" | "Some(Vec::new())") => {
                format!("{access}.as_ref().is_none_or(|v| !v.is_empty())")
            }
            (Ty::String, lit) if lit.starts_with("String::from(") => {
                let inner = &lit["String::from(".len()..lit.len() - 1];
                format!("{access} != {inner}")
            }
            (Ty::String, lit) if lit.starts_with("Some(String::from(") => {
                let inner = &lit["Some(String::from(".len()..lit.len() - 2];
                format!("{access}.as_deref() != Some({inner})")
            }
            (Ty::Struct(n), lit) if lit.starts_with("Some(") => {
                format!("{access}.as_ref() != Some(&{n}::default())")
            }
            (_, lit) => format!("{access} != {lit}"),
        })
    }

    fn decode_expr(
        &self,
        s: &StructInfo,
        f: &Field,
        pctx: Versions,
        b: &str,
        fx: &str,
        tagged: bool,
    ) -> String {
        let name = self.field_path(s, f);
        let optional = !f.nullable.is_empty() || f.ty == Ty::Records;
        let nullable = Cond::within(f.nullable, pctx);
        let nc = nullable.code();
        match &f.ty {
            Ty::String if optional => {
                format!("codec::read_nullable_string({b}, {fx}, {nc}, {name})?")
            }
            Ty::String => format!("codec::read_string({b}, {fx}, {name})?"),
            Ty::Records if optional && self.spec.kind == super::spec::Kind::Response => {
                format!("codec::read_nullable_bytes({b}, {fx}, {nc}, {name})?.map(Records::Memory)")
            }
            Ty::Bytes | Ty::Records if optional => {
                format!("codec::read_nullable_bytes({b}, {fx}, {nc}, {name})?")
            }
            Ty::Bytes | Ty::Records => format!("codec::read_bytes({b}, {fx}, {name})?"),
            Ty::Struct(t) if optional => {
                let read = format!("Some({t}::decode({b}, version)?)");
                let marker = format!("codec::read_struct_marker({b}, {tagged}, {name})?");
                match nullable {
                    Cond::Never => read,
                    Cond::Always => format!("if {marker} {{ {read} }} else {{ None }}"),
                    Cond::Expr(_) => {
                        let not_nullable = Cond::outside(f.nullable, pctx).code();
                        format!("if {not_nullable} || {marker} {{ {read} }} else {{ None }}")
                    }
                }
            }
            Ty::Struct(t) => format!("{t}::decode({b}, version)?"),
            Ty::Array(e) => {
                let min = self.min_element_size(f, pctx);
                let closure = match e.as_ref() {
                    Ty::Struct(t) => format!("|b| {t}::decode(b, version)"),
                    Ty::String => format!("|b| codec::read_string(b, {fx}, {name})"),
                    other => format!("|b| codec::{}(b, {name})", scalar_reader(other)),
                };
                if optional {
                    format!(
                        "codec::read_nullable_array({b}, {fx}, {nc}, {min}, {name}, {closure})?"
                    )
                } else {
                    format!("codec::read_array({b}, {fx}, {min}, {name}, {closure})?")
                }
            }
            other => format!("codec::{}({b}, {name})?", scalar_reader(other)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_stmts(
        &self,
        s: &StructInfo,
        f: &Field,
        pctx: Versions,
        recv: &str,
        arg: &str,
        fx: &str,
        tagged: bool,
        access: &str,
    ) -> String {
        let name = self.field_path(s, f);
        let optional = !f.nullable.is_empty() || f.ty == Ty::Records;
        let nullable = Cond::within(f.nullable, pctx);
        let nc = nullable.code();
        match &f.ty {
            Ty::String if optional => format!(
                "codec::write_nullable_string({arg}, {access}.as_deref(), {fx}, {nc}, {name})?;"
            ),
            Ty::String => format!("codec::write_string({arg}, &{access}, {fx}, {name})?;"),
            Ty::Records if optional && self.spec.kind == super::spec::Kind::Response => format!(
                "codec::write_nullable_records({arg}, {access}.as_ref(), {fx}, {nc}, {name})?;"
            ),
            Ty::Bytes | Ty::Records if optional => format!(
                "codec::write_nullable_bytes({arg}, {access}.as_deref(), {fx}, {nc}, {name})?;"
            ),
            Ty::Bytes | Ty::Records => {
                format!("codec::write_bytes({arg}, &{access}, {fx}, {name})?;")
            }
            Ty::Struct(_) if optional => {
                let (present, absent) = if tagged {
                    (
                        format!("codec::write_unsigned_varint({arg}, 1);"),
                        format!("codec::write_unsigned_varint({arg}, 0);"),
                    )
                } else {
                    (format!("{recv}.put_i8(1);"), format!("{recv}.put_i8(-1);"))
                };
                let null_err =
                    format!("return Err(EncodeError::NullNotAllowed {{ field: {name} }});");
                let (some_prefix, none_body) = match &nullable {
                    Cond::Always => (present, absent),
                    Cond::Never => (String::new(), null_err),
                    Cond::Expr(e) => (
                        format!("if {e} {{ {present} }}"),
                        format!("if {e} {{ {absent} }} else {{ {null_err} }}"),
                    ),
                };
                format!(
                    "match &{access} {{ Some(v) => {{ {some_prefix} v.encode({arg}, version)?; }} \
                     None => {{ {none_body} }} }}"
                )
            }
            Ty::Struct(_) => format!("{access}.encode({arg}, version)?;"),
            Ty::Array(e) => {
                let each = match e.as_ref() {
                    Ty::Struct(_) => format!("e.encode({arg}, version)?;"),
                    Ty::String => format!("codec::write_string({arg}, e, {fx}, {name})?;"),
                    other => scalar_writer(other, recv, "*e"),
                };
                if optional {
                    format!(
                        "match &{access} {{ Some(v) => {{ \
                         codec::write_array_len({arg}, v.len(), {fx}, {name})?; \
                         for e in v {{ {each} }} }} \
                         None => codec::write_null_array({arg}, {fx}, {nc}, {name})?, }}"
                    )
                } else {
                    format!(
                        "codec::write_array_len({arg}, {access}.len(), {fx}, {name})?; \
                         for e in &{access} {{ {each} }}"
                    )
                }
            }
            other => scalar_writer(other, recv, access),
        }
    }

    /// Emits the whole module for this message.
    pub fn emit_module(&self, extra: &str) -> Result<String, String> {
        let spec = self.spec;
        let mut body = String::new();
        for s in &self.structs {
            self.emit_struct(&mut body, s)?;
        }
        body.push_str(extra);

        let mut out = String::new();
        let _ = writeln!(out, "//! {}", self.module_summary());
        let _ = writeln!(out, "//!");
        let _ = writeln!(
            out,
            "//! Generated by `cargo xtask codegen` from Kafka's message spec `{}`. Do not edit.",
            self.origin
        );
        out.push('\n');
        let uses_uuid = self
            .structs
            .iter()
            .any(|s| s.fields.iter().any(|f| *elem(&f.ty) == Ty::Uuid));
        let uses_raw = self.structs.iter().any(|s| self.has_tag_section(s));
        if body.contains(".put_") {
            out.push_str("use bytes::{BufMut, Bytes};\n");
        } else {
            out.push_str("use bytes::Bytes;\n");
        }
        out.push('\n');
        out.push_str("use crate::codec::{self, DecodeError, EncodeError};\n");
        if body.contains("Records::Memory") {
            out.push_str("use crate::encoder::{Encoder, Records};\n");
        } else {
            out.push_str("use crate::encoder::Encoder;\n");
        }
        let mut types = Vec::new();
        if spec.kind != super::spec::Kind::Header {
            types.push("Message");
        }
        if uses_raw {
            types.push("RawTaggedField");
        }
        if body.contains("impl Request for") {
            types.push("Request");
        }
        if uses_uuid {
            types.push("Uuid");
        }
        types.push("VersionRange");
        let _ = writeln!(out, "use crate::types::{{{}}};", types.join(", "));
        out.push('\n');
        out.push_str(&body);
        Ok(out)
    }

    fn module_summary(&self) -> String {
        let spec = self.spec;
        let key = spec
            .api_key
            .map(|k| format!(" (API key {k})"))
            .unwrap_or_default();
        format!(
            "The `{}` message{key}: versions {}, flexible versions {}.",
            spec.name,
            fmt_versions(spec.valid),
            fmt_versions(spec.flexible)
        )
    }

    fn emit_struct(&self, out: &mut String, s: &StructInfo) -> Result<(), String> {
        let spec = self.spec;
        let tag_section = self.has_tag_section(s);
        // Struct definition.
        if s.top {
            let key = spec
                .api_key
                .map(|k| format!(" (API key {k})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "/// The `{}` message{key}, valid in versions {}.",
                s.name,
                fmt_versions(spec.valid)
            );
        } else {
            doc(out, &s.about, &format!("The `{}` structure.", s.name));
        }
        let mut defaults = Vec::new();
        let mut derivable = true;
        for f in &s.fields {
            let d = self.default_expr(f)?;
            if !is_type_default(&d) {
                derivable = false;
            }
            defaults.push(d);
        }
        let eq = if self.has_float(s) { "" } else { ", Eq" };
        let dd = if derivable { ", Default" } else { "" };
        let _ = writeln!(out, "#[derive(Debug, Clone, PartialEq{eq}{dd})]");
        let _ = writeln!(out, "pub struct {} {{", s.name);
        for f in &s.fields {
            let mut about = doc_text(&f.about);
            if about.is_empty() {
                about = format!("The `{}` field.", f.name);
            }
            let _ = writeln!(out, "/// {about}");
            let _ = writeln!(out, "///");
            let _ = writeln!(out, "/// {}", field_versions_note(f));
            let _ = writeln!(out, "pub {}: {},", field_ident(&f.name), self.rust_type(f));
        }
        if tag_section {
            out.push_str(
                "/// Tagged fields this code does not know, kept so they are written back unchanged.\n",
            );
            out.push_str("pub unknown_tagged_fields: Vec<RawTaggedField>,\n");
        }
        out.push_str("}\n\n");

        if !derivable {
            let _ = writeln!(out, "impl Default for {} {{", s.name);
            out.push_str("fn default() -> Self {\nSelf {\n");
            for (f, d) in s.fields.iter().zip(&defaults) {
                let _ = writeln!(out, "{}: {d},", field_ident(&f.name));
            }
            if tag_section {
                out.push_str("unknown_tagged_fields: Vec::new(),\n");
            }
            out.push_str("}\n}\n}\n\n");
        }

        let _ = writeln!(out, "impl {} {{", s.name);
        if s.top {
            if let Some(k) = spec.api_key {
                out.push_str("/// The API key.\n");
                let _ = writeln!(out, "pub const API_KEY: i16 = {k};");
            }
            out.push_str("/// The message name in Kafka's specs.\n");
            let _ = writeln!(out, "pub const NAME: &'static str = \"{}\";", s.name);
            out.push_str("/// The versions the spec defines.\n");
            let _ = writeln!(
                out,
                "pub const VALID_VERSIONS: VersionRange = {};",
                range_expr(spec.valid)
            );
            out.push_str("/// The versions using the flexible encoding.\n");
            let _ = writeln!(
                out,
                "pub const FLEXIBLE_VERSIONS: VersionRange = {};",
                range_expr(spec.flexible)
            );
            if spec.kind == super::spec::Kind::Request {
                out.push_str(
                    "/// Whether the spec marks the latest version as unstable (not to be \
                     advertised by default).\n",
                );
                let _ = writeln!(
                    out,
                    "pub const LATEST_VERSION_UNSTABLE: bool = {};",
                    spec.latest_version_unstable
                );
            }
            out.push('\n');
        }
        self.emit_decode(out, s)?;
        self.emit_encode(out, s)?;
        out.push_str("}\n\n");

        if s.top && spec.kind != super::spec::Kind::Header {
            let _ = writeln!(out, "impl Message for {} {{", s.name);
            let _ = writeln!(out, "const NAME: &'static str = {}::NAME;", s.name);
            let _ = writeln!(
                out,
                "const VALID_VERSIONS: VersionRange = {}::VALID_VERSIONS;",
                s.name
            );
            let _ = writeln!(
                out,
                "const FLEXIBLE_VERSIONS: VersionRange = {}::FLEXIBLE_VERSIONS;",
                s.name
            );
            out.push_str(
                "fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {\n\
                 Self::decode(buf, version)\n}\n",
            );
            out.push_str(
                "fn encode(&self, buf: &mut Encoder, version: i16) -> Result<(), EncodeError> {\n\
                 Self::encode(self, buf, version)\n}\n",
            );
            out.push_str("}\n\n");
        }
        Ok(())
    }

    fn emit_decode(&self, dst: &mut String, s: &StructInfo) -> Result<(), String> {
        let ctx = s.ctx;
        let tag_section = self.has_tag_section(s);
        let flex = self.flexible_cond(s);
        let mut body = String::new();
        let out = &mut body;
        if s.top {
            out.push_str(
                "if !Self::VALID_VERSIONS.contains(version) {\n\
                 return Err(DecodeError::UnsupportedVersion { message: Self::NAME, version });\n}\n",
            );
        }
        let fx = match &flex {
            Cond::Expr(e) => {
                let _ = writeln!(out, "let flexible = {e};");
                "flexible".to_string()
            }
            c => c.code(),
        };
        let mut known_tags: Vec<(u32, &Field)> = Vec::new();
        for f in &s.fields {
            let id = field_ident(&f.name);
            let untagged = f.versions.minus(f.tagged);
            let tagged_v = f.versions.intersect(f.tagged);
            let pu = Cond::within(untagged, ctx);
            let pt = if tag_section {
                Cond::within(tagged_v, ctx)
            } else {
                Cond::Never
            };
            let mutability = if pt == Cond::Never { "" } else { "mut " };
            if pt != Cond::Never {
                let tag = f
                    .tag
                    .ok_or_else(|| format!("{}: tagged without tag", f.name))?;
                known_tags.push((tag, f));
            }
            let d = self.default_expr(f)?;
            let pctx = untagged.intersect(ctx);
            match &pu {
                Cond::Never => {
                    let _ = writeln!(out, "let {mutability}{id} = {d};");
                }
                Cond::Always => {
                    let e = self.decode_expr(s, f, pctx, "buf", &fx, false);
                    let _ = writeln!(out, "let {mutability}{id} = {e};");
                }
                Cond::Expr(c) => {
                    let e = self.decode_expr(s, f, pctx, "buf", &fx, false);
                    let _ = writeln!(
                        out,
                        "let {mutability}{id} = if {c} {{ {e} }} else {{ {d} }};"
                    );
                }
            }
        }
        if tag_section {
            known_tags.sort_by_key(|(t, _)| *t);
            let sp = self.struct_path(s);
            let mut section = String::new();
            let _ = writeln!(section, "let count = codec::read_tagged_count(buf, {sp})?;");
            section.push_str("for _ in 0..count {\n");
            if known_tags.is_empty() {
                let _ = writeln!(
                    section,
                    "let (tag, data) = codec::read_tagged_field(buf, {sp})?;"
                );
                section.push_str("unknown_tagged_fields.push(RawTaggedField { tag, data });\n");
            } else {
                let _ = writeln!(
                    section,
                    "let (tag, mut data) = codec::read_tagged_field(buf, {sp})?;"
                );
                section.push_str("match tag {\n");
                for (tag, f) in &known_tags {
                    let tagged_v = f.versions.intersect(f.tagged);
                    let pt = Cond::within(tagged_v, ctx);
                    let guard = match &pt {
                        Cond::Expr(e) => format!(" if {e}"),
                        _ => String::new(),
                    };
                    let e =
                        self.decode_expr(s, f, tagged_v.intersect(ctx), "&mut data", "true", true);
                    let _ = writeln!(
                        section,
                        "{tag}{guard} => {{\nlet declared = data.len();\n{} = {e};\n\
                         codec::finish_tagged_field(&data, declared, {})?;\n}}",
                        field_ident(&f.name),
                        self.field_path(s, f)
                    );
                }
                section.push_str(
                    "_ => unknown_tagged_fields.push(RawTaggedField { tag, data }),\n}\n",
                );
            }
            section.push_str("}\n");
            out.push_str("let mut unknown_tagged_fields = Vec::new();\n");
            match &flex {
                Cond::Always => out.push_str(&section),
                _ => {
                    let _ = write!(out, "if {fx} {{\n{section}}}\n");
                }
            }
        }
        out.push_str("Ok(Self {\n");
        for f in &s.fields {
            let _ = writeln!(out, "{},", field_ident(&f.name));
        }
        if tag_section {
            out.push_str("unknown_tagged_fields,\n");
        }
        out.push_str("})\n}\n\n");
        let _ = write!(
            dst,
            "/// Decodes the structure at `version` from the front of `buf`.\n\
             pub fn decode({}: &mut Bytes, {}: i16) -> Result<Self, DecodeError> {{\n{body}",
            param(&body, "buf"),
            param(&body, "version")
        );
        Ok(())
    }

    fn emit_encode(&self, dst: &mut String, s: &StructInfo) -> Result<(), String> {
        let ctx = s.ctx;
        let tag_section = self.has_tag_section(s);
        let flex = self.flexible_cond(s);
        let mut body = String::new();
        let out = &mut body;
        if s.top {
            out.push_str(
                "if !Self::VALID_VERSIONS.contains(version) {\n\
                 return Err(EncodeError::UnsupportedVersion { message: Self::NAME, version });\n}\n",
            );
        }
        let fx = match &flex {
            Cond::Expr(e) => {
                let _ = writeln!(out, "let flexible = {e};");
                "flexible".to_string()
            }
            c => c.code(),
        };
        // Fields that are absent in some versions must hold their default there.
        for f in &s.fields {
            if f.ignorable {
                continue;
            }
            let present = if tag_section {
                f.versions
            } else {
                f.versions.minus(f.tagged)
            };
            let absent = Cond::outside(present, ctx);
            let access = format!("self.{}", field_ident(&f.name));
            let nd = self.non_default(f, &access)?;
            let check = match absent {
                Cond::Never => continue,
                Cond::Always => nd,
                Cond::Expr(e) if e.contains("||") => format!("({e}) && {nd}"),
                Cond::Expr(e) => format!("{e} && {nd}"),
            };
            let _ = writeln!(
                out,
                "if {check} {{\nreturn Err(EncodeError::FieldNotInVersion {{ field: {}, version }});\n}}",
                self.field_path(s, f)
            );
        }
        let mut known_tags: Vec<(u32, &Field)> = Vec::new();
        for f in &s.fields {
            let access = format!("self.{}", field_ident(&f.name));
            let untagged = f.versions.minus(f.tagged);
            let pu = Cond::within(untagged, ctx);
            if tag_section && Cond::within(f.versions.intersect(f.tagged), ctx) != Cond::Never {
                known_tags.push((f.tag.unwrap_or(0), f));
            }
            let pctx = untagged.intersect(ctx);
            match pu {
                Cond::Never => {}
                Cond::Always => {
                    out.push_str(&self.encode_stmts(s, f, pctx, "buf", "buf", &fx, false, &access));
                    out.push('\n');
                }
                Cond::Expr(c) => {
                    let st = self.encode_stmts(s, f, pctx, "buf", "buf", &fx, false, &access);
                    let _ = writeln!(out, "if {c} {{\n{st}\n}}");
                }
            }
        }
        let sp = self.struct_path(s);
        if tag_section {
            known_tags.sort_by_key(|(t, _)| *t);
            let mut section = String::new();
            if known_tags.is_empty() {
                let _ = writeln!(
                    section,
                    "codec::write_tagged_count(buf, self.unknown_tagged_fields.len(), {sp})?;\n\
                     codec::RawTagWriter::new(&self.unknown_tagged_fields).write_rest(buf, {sp})?;"
                );
            } else {
                section.push_str("let mut num_tagged = self.unknown_tagged_fields.len();\n");
                for (_, f) in &known_tags {
                    let access = format!("self.{}", field_ident(&f.name));
                    let tagged_v = f.versions.intersect(f.tagged);
                    let pt = Cond::within(tagged_v, ctx);
                    let nd = self.non_default(f, &access)?;
                    let cond = pt.and(&nd).unwrap_or_else(|| "false".into());
                    let _ = writeln!(
                        section,
                        "let write_{} = {cond};\nif write_{} {{ num_tagged += 1; }}",
                        snake(&f.name),
                        snake(&f.name)
                    );
                }
                let _ = writeln!(
                    section,
                    "codec::write_tagged_count(buf, num_tagged, {sp})?;"
                );
                section.push_str(
                    "let mut raw = codec::RawTagWriter::new(&self.unknown_tagged_fields);\n",
                );
                for (tag, f) in &known_tags {
                    let access = format!("self.{}", field_ident(&f.name));
                    let tagged_v = f.versions.intersect(f.tagged).intersect(ctx);
                    let st =
                        self.encode_stmts(s, f, tagged_v, "tmp", "&mut tmp", "true", true, &access);
                    let _ = writeln!(
                        section,
                        "raw.write_before(buf, {tag}, {sp})?;\nif write_{} {{\n\
                         let mut tmp = Encoder::contiguous();\n{st}\n\
                         codec::write_tagged_field(buf, {tag}, &tmp, {})?;\n}}",
                        snake(&f.name),
                        self.field_path(s, f)
                    );
                }
                let _ = writeln!(section, "raw.write_rest(buf, {sp})?;");
            }
            let unsupported = format!(
                "if !self.unknown_tagged_fields.is_empty() {{\n\
                 return Err(EncodeError::TaggedFieldsNotSupported {{ structure: {sp}, version }});\n}}"
            );
            match &flex {
                Cond::Always => out.push_str(&section),
                Cond::Never => {
                    let _ = writeln!(out, "{unsupported}");
                }
                Cond::Expr(_) => {
                    let _ = writeln!(out, "if {fx} {{\n{section}}} else {unsupported}");
                }
            }
        }
        out.push_str("Ok(())\n}\n");
        let _ = write!(
            dst,
            "/// Appends the structure encoded at `version` to `buf`.\n\
             pub fn encode(&self, {}: &mut Encoder, {}: i16) -> Result<(), EncodeError> {{\n{body}",
            param(&body, "buf"),
            param(&body, "version")
        );
        Ok(())
    }

    /// Emits sample constructors used by the round-trip tests: every field present at a version
    /// gets a non-default value.
    pub fn emit_samples(&self, out: &mut String) -> Result<(), String> {
        for s in &self.structs {
            let path = format!("{}::{}", self.module, s.name);
            let fn_name = sample_fn(&self.module, &s.name);
            let _ = writeln!(out, "/// A populated `{path}` for `version`.");
            let _ = writeln!(out, "pub fn {fn_name}(version: i16) -> {path} {{");
            let _ = writeln!(out, "let mut v = {path}::default();");
            let mut seed: u32 = 0;
            for f in &s.fields {
                seed += 1;
                let present = if self.has_tag_section(s) {
                    f.versions
                } else {
                    f.versions.minus(f.tagged)
                };
                let cond = Cond::within(present, s.ctx);
                if cond == Cond::Never {
                    continue;
                }
                let value = self.sample_value(f, seed)?;
                let assign = format!("v.{} = {value};", field_ident(&f.name));
                match cond {
                    Cond::Always => {
                        let _ = writeln!(out, "{assign}");
                    }
                    c => {
                        let _ = writeln!(out, "if {} {{ {assign} }}", c.code());
                    }
                }
            }
            if self.has_tag_section(s) {
                let cond = Cond::within(self.spec.flexible, s.ctx);
                let _ = writeln!(
                    out,
                    "if {} {{ v.unknown_tagged_fields.push(RawTaggedField {{ tag: 1000, data: Bytes::from_static(b\"unknown\") }}); }}",
                    cond.code()
                );
            }
            out.push_str("let _ = version;\nv\n}\n\n");
        }
        Ok(())
    }

    fn sample_value(&self, f: &Field, seed: u32) -> Result<String, String> {
        let optional = !f.nullable.is_empty() || f.ty == Ty::Records;
        let wrap = |v: String| if optional { format!("Some({v})") } else { v };
        let d = self.default_expr(f)?;
        let scalar = |t: &Ty, seed: u32| -> String {
            match t {
                Ty::Bool => {
                    if d == "true" {
                        "false".into()
                    } else {
                        "true".into()
                    }
                }
                Ty::Int8 | Ty::Int16 | Ty::Uint16 | Ty::Int32 | Ty::Uint32 | Ty::Int64 => {
                    let mut n = 10 + seed as i64;
                    if d == n.to_string() {
                        n += 1;
                    }
                    n.to_string()
                }
                Ty::Float64 => format!("{}.5", seed),
                Ty::Uuid => format!("Uuid([{}; 16])", seed % 250 + 1),
                Ty::String => format!("String::from(\"s{seed}\")"),
                Ty::Bytes => format!("Bytes::from_static(b\"b{seed}\")"),
                Ty::Records if self.spec.kind == super::spec::Kind::Response => {
                    "Records::Memory(Bytes::from_static(b\"record batch bytes\"))".into()
                }
                Ty::Records => "Bytes::from_static(b\"record batch bytes\")".into(),
                Ty::Struct(n) => format!("{}(version)", sample_fn(&self.module, n)),
                Ty::Array(_) => "Vec::new()".into(),
            }
        };
        Ok(match &f.ty {
            Ty::Array(e) => {
                let a = scalar(e, seed);
                let b = scalar(e, seed + 1);
                wrap(format!("vec![{a}, {b}]"))
            }
            t => wrap(scalar(t, seed)),
        })
    }
}

/// `name` if `body` uses it as an identifier, `_name` otherwise (so unused parameters do not warn).
fn param(body: &str, name: &str) -> String {
    if uses_ident(body, name) {
        name.to_string()
    } else {
        format!("_{name}")
    }
}

/// Whether `ident` occurs in `code` as a whole identifier.
pub fn uses_ident(code: &str, ident: &str) -> bool {
    let bytes = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut from = 0;
    while let Some(pos) = code[from..].find(ident) {
        let start = from + pos;
        let end = start + ident.len();
        let before_ok = start == 0 || !is_ident(bytes[start - 1]);
        let after_ok = end >= bytes.len() || !is_ident(bytes[end]);
        if before_ok && after_ok {
            return true;
        }
        from = end;
    }
    false
}

pub fn sample_fn(module: &str, struct_name: &str) -> String {
    format!("{module}__{}", snake(struct_name))
}

fn struct_name(t: &Ty) -> Option<&str> {
    match elem(t) {
        Ty::Struct(n) => Some(n),
        _ => None,
    }
}

fn elem(t: &Ty) -> &Ty {
    match t {
        Ty::Array(e) => elem(e),
        t => t,
    }
}

fn scalar_type(t: &Ty) -> String {
    match t {
        Ty::Bool => "bool".into(),
        Ty::Int8 => "i8".into(),
        Ty::Int16 => "i16".into(),
        Ty::Uint16 => "u16".into(),
        Ty::Int32 => "i32".into(),
        Ty::Uint32 => "u32".into(),
        Ty::Int64 => "i64".into(),
        Ty::Float64 => "f64".into(),
        Ty::Uuid => "Uuid".into(),
        Ty::String => "String".into(),
        Ty::Bytes | Ty::Records => "Bytes".into(),
        Ty::Struct(n) => n.clone(),
        Ty::Array(e) => format!("Vec<{}>", scalar_type(e)),
    }
}

fn scalar_reader(t: &Ty) -> &'static str {
    match t {
        Ty::Bool => "read_bool",
        Ty::Int8 => "read_i8",
        Ty::Int16 => "read_i16",
        Ty::Uint16 => "read_u16",
        Ty::Int32 => "read_i32",
        Ty::Uint32 => "read_u32",
        Ty::Int64 => "read_i64",
        Ty::Float64 => "read_f64",
        Ty::Uuid => "read_uuid",
        _ => "read_unsupported",
    }
}

fn scalar_writer(t: &Ty, recv: &str, access: &str) -> String {
    match t {
        Ty::Bool => format!("{recv}.put_u8(u8::from({access}));"),
        Ty::Int8 => format!("{recv}.put_i8({access});"),
        Ty::Int16 => format!("{recv}.put_i16({access});"),
        Ty::Uint16 => format!("{recv}.put_u16({access});"),
        Ty::Int32 => format!("{recv}.put_i32({access});"),
        Ty::Uint32 => format!("{recv}.put_u32({access});"),
        Ty::Int64 => format!("{recv}.put_i64({access});"),
        Ty::Float64 => format!("{recv}.put_f64({access});"),
        Ty::Uuid => {
            let a = access.trim_start_matches('*');
            format!("{recv}.put_slice(&{a}.0);")
        }
        other => format!("compile_error!(\"unsupported scalar {other:?}\");"),
    }
}

fn int_default(d: Option<&str>, t: &Ty) -> Result<String, String> {
    let Some(s) = d else { return Ok("0".into()) };
    let s = s.trim();
    let v: i128 = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).map_err(|e| format!("bad default {s}: {e}"))?
    } else {
        s.parse().map_err(|e| format!("bad default {s}: {e}"))?
    };
    let (lo, hi): (i128, i128) = match t {
        Ty::Int8 => (i8::MIN.into(), i8::MAX.into()),
        Ty::Int16 => (i16::MIN.into(), i16::MAX.into()),
        Ty::Uint16 => (0, u16::MAX.into()),
        Ty::Int32 => (i32::MIN.into(), i32::MAX.into()),
        Ty::Uint32 => (0, u32::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    };
    if v < lo || v > hi {
        return Err(format!("default {s} out of range"));
    }
    if v == lo && lo < 0 {
        // Spell the minimum as the type's constant so the literal cannot overflow.
        return Ok(format!("{}::MIN", scalar_type(t)));
    }
    if v == hi {
        return Ok(format!("{}::MAX", scalar_type(t)));
    }
    Ok(v.to_string())
}

fn is_type_default(d: &str) -> bool {
    matches!(
        d,
        "0" | "false"
            | "0.0"
            | "Uuid::ZERO"
            | "String::new()"
            | "Bytes::new()"
            | "None"
            | "Vec::new()"
    ) || (d.ends_with("::default()") && !d.starts_with("Some("))
}

pub fn fmt_versions(v: Versions) -> String {
    if v.is_empty() {
        "none".into()
    } else if v.max == i16::MAX {
        format!("{}+", v.min)
    } else if v.min == v.max {
        v.min.to_string()
    } else {
        format!("{}-{}", v.min, v.max)
    }
}

pub fn range_expr(v: Versions) -> String {
    if v.is_empty() {
        "VersionRange::NONE".into()
    } else if v.max == i16::MAX {
        format!("VersionRange::new({}, i16::MAX)", v.min)
    } else {
        format!("VersionRange::new({}, {})", v.min, v.max)
    }
}

fn field_versions_note(f: &Field) -> String {
    let mut s = format!("Versions: {}", fmt_versions(f.versions));
    if !f.nullable.is_empty() {
        let _ = write!(s, "; nullable: {}", fmt_versions(f.nullable));
    }
    if !f.tagged.is_empty() {
        let _ = write!(
            s,
            "; tagged (tag {}): {}",
            f.tag.unwrap_or(0),
            fmt_versions(f.tagged)
        );
    }
    if let Some(d) = &f.default {
        let _ = write!(s, "; default: {}", doc_text(d));
    }
    s.push('.');
    s
}
