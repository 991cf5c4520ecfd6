//! Parsing of Kafka's JSON message specs into a typed model.
//!
//! The spec files are JSON with `//` line comments; [`strip_comments`] removes those comments
//! while leaving `//` inside string literals (URLs in "about" text) untouched.

use std::path::Path;

use serde_json::Value;

/// An inclusive version range; empty when `min > max`. Open-ended ranges use `i16::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { min: 0, max: -1 };

    pub fn parse(s: &str) -> Result<Versions, String> {
        let s = s.trim();
        if s == "none" {
            return Ok(Versions::NONE);
        }
        let num = |t: &str| {
            t.trim()
                .parse::<i16>()
                .map_err(|e| format!("bad version '{s}': {e}"))
        };
        if let Some(min) = s.strip_suffix('+') {
            return Ok(Versions {
                min: num(min)?,
                max: i16::MAX,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            return Ok(Versions {
                min: num(a)?,
                max: num(b)?,
            });
        }
        let v = num(s)?;
        Ok(Versions { min: v, max: v })
    }

    pub fn is_empty(self) -> bool {
        self.min > self.max
    }

    pub fn contains(self, v: i16) -> bool {
        v >= self.min && v <= self.max
    }

    pub fn intersect(self, o: Versions) -> Versions {
        let r = Versions {
            min: self.min.max(o.min),
            max: self.max.min(o.max),
        };
        if r.is_empty() { Versions::NONE } else { r }
    }

    /// The smallest range holding both.
    pub fn hull(self, o: Versions) -> Versions {
        if self.is_empty() {
            o
        } else if o.is_empty() {
            self
        } else {
            Versions {
                min: self.min.min(o.min),
                max: self.max.max(o.max),
            }
        }
    }

    pub fn is_subset_of(self, o: Versions) -> bool {
        self.is_empty() || (o.min <= self.min && self.max <= o.max)
    }

    /// `self` minus a suffix or prefix range `o` (tagged versions are always open suffixes in
    /// practice); falls back to `self` when the difference is not a single range.
    pub fn minus(self, o: Versions) -> Versions {
        let i = self.intersect(o);
        if i.is_empty() {
            return self;
        }
        if i.min <= self.min && i.max >= self.max {
            return Versions::NONE;
        }
        if i.max >= self.max {
            return Versions {
                min: self.min,
                max: i.min - 1,
            };
        }
        if i.min <= self.min {
            return Versions {
                min: i.max + 1,
                max: self.max,
            };
        }
        self
    }

    /// The versions in `0..=max_version` (finite), for iterating.
    pub fn iter_within(self, bound: Versions) -> impl Iterator<Item = i16> {
        let r = self.intersect(bound);
        let (a, b) = if r.is_empty() { (1, 0) } else { (r.min, r.max) };
        a..=b
    }
}

/// The type of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Float64,
    Uuid,
    String,
    Bytes,
    Records,
    Struct(String),
    Array(Box<Ty>),
}

impl Ty {
    pub fn parse(s: &str) -> Ty {
        if let Some(inner) = s.strip_prefix("[]") {
            return Ty::Array(Box::new(Ty::parse(inner)));
        }
        match s {
            "bool" => Ty::Bool,
            "int8" => Ty::Int8,
            "int16" => Ty::Int16,
            "uint16" => Ty::Uint16,
            "int32" => Ty::Int32,
            "uint32" => Ty::Uint32,
            "int64" => Ty::Int64,
            "float64" => Ty::Float64,
            "uuid" => Ty::Uuid,
            "string" => Ty::String,
            "bytes" => Ty::Bytes,
            "records" => Ty::Records,
            other => Ty::Struct(other.to_string()),
        }
    }

    /// Encoded size of fixed-size types.
    pub fn fixed_size(&self) -> Option<usize> {
        Some(match self {
            Ty::Bool | Ty::Int8 => 1,
            Ty::Int16 | Ty::Uint16 => 2,
            Ty::Int32 | Ty::Uint32 => 4,
            Ty::Int64 | Ty::Float64 => 8,
            Ty::Uuid => 16,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: Ty,
    pub versions: Versions,
    pub nullable: Versions,
    pub tagged: Versions,
    pub tag: Option<u32>,
    pub default: Option<String>,
    pub ignorable: bool,
    /// Field-level `flexibleVersions` (only used by the headers, which are hand-written).
    pub flexible_override: Option<Versions>,
    pub about: String,
    /// Inline struct definition (for struct and struct-array types).
    pub fields: Option<Vec<Field>>,
}

#[derive(Debug, Clone)]
pub struct CommonStruct {
    pub name: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    Header,
    Data,
}

#[derive(Debug, Clone)]
pub struct MessageSpec {
    pub name: String,
    pub kind: Kind,
    pub api_key: Option<i16>,
    pub valid: Versions,
    pub flexible: Versions,
    pub fields: Vec<Field>,
    pub common_structs: Vec<CommonStruct>,
    pub latest_version_unstable: bool,
    pub listeners: Vec<String>,
}

/// Removes `//` line comments outside string literals.
pub fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let mut in_str = false;
        let mut escaped = false;
        let mut prev_slash = false;
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_str = false;
                }
                continue;
            }
            if c == '"' {
                in_str = true;
                prev_slash = false;
            } else if c == '/' {
                if prev_slash {
                    cut = i - 1;
                    break;
                }
                prev_slash = true;
            } else {
                prev_slash = false;
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(str::to_string)
}

fn versions_of(v: &Value, key: &str) -> Result<Versions, String> {
    match v.get(key) {
        None => Ok(Versions::NONE),
        Some(Value::String(s)) => Versions::parse(s),
        Some(other) => Err(format!("{key} is not a string: {other}")),
    }
}

fn parse_fields(v: &Value, ctx: &str) -> Result<Vec<Field>, String> {
    let Some(arr) = v.as_array() else {
        return Err(format!("{ctx}: fields is not an array"));
    };
    arr.iter().map(|f| parse_field(f, ctx)).collect()
}

fn parse_field(v: &Value, ctx: &str) -> Result<Field, String> {
    let name = str_of(v, "name").ok_or_else(|| format!("{ctx}: field without name"))?;
    let ctx = format!("{ctx}.{name}");
    let ty = Ty::parse(&str_of(v, "type").ok_or_else(|| format!("{ctx}: no type"))?);
    let versions = versions_of(v, "versions")?;
    let default = v.get("default").map(|d| match d {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let tag = match v.get("tag") {
        None => None,
        Some(t) => Some(
            t.as_u64()
                .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| format!("{ctx}: bad tag"))?,
        ),
    };
    let fields = match v.get("fields") {
        None => None,
        Some(f) => Some(parse_fields(f, &ctx)?),
    };
    Ok(Field {
        name,
        ty,
        versions,
        nullable: versions_of(v, "nullableVersions")?,
        tagged: versions_of(v, "taggedVersions")?,
        tag,
        default,
        ignorable: v.get("ignorable").and_then(Value::as_bool).unwrap_or(false),
        flexible_override: match v.get("flexibleVersions") {
            None => None,
            Some(_) => Some(versions_of(v, "flexibleVersions")?),
        },
        about: str_of(v, "about").unwrap_or_default(),
        fields,
    })
}

pub fn parse_spec(src: &str, origin: &str) -> Result<MessageSpec, String> {
    let v: Value =
        serde_json::from_str(&strip_comments(src)).map_err(|e| format!("{origin}: {e}"))?;
    let name = str_of(&v, "name").ok_or_else(|| format!("{origin}: no name"))?;
    let kind = match str_of(&v, "type").as_deref() {
        Some("request") => Kind::Request,
        Some("response") => Kind::Response,
        Some("header") => Kind::Header,
        _ => Kind::Data,
    };
    let api_key = v
        .get("apiKey")
        .and_then(Value::as_i64)
        .and_then(|k| i16::try_from(k).ok());
    let mut common_structs = Vec::new();
    if let Some(cs) = v.get("commonStructs").and_then(Value::as_array) {
        for c in cs {
            let cname = str_of(c, "name").ok_or_else(|| format!("{origin}: common struct name"))?;
            let fields = parse_fields(c.get("fields").unwrap_or(&Value::Null), &cname)?;
            common_structs.push(CommonStruct {
                name: cname,
                fields,
            });
        }
    }
    Ok(MessageSpec {
        fields: parse_fields(v.get("fields").unwrap_or(&Value::Null), &name)?,
        name,
        kind,
        api_key,
        valid: versions_of(&v, "validVersions")?,
        flexible: versions_of(&v, "flexibleVersions")?,
        common_structs,
        latest_version_unstable: v
            .get("latestVersionUnstable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        listeners: v
            .get("listeners")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

pub fn load_spec(path: &Path) -> Result<MessageSpec, String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_spec(&src, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_outside_strings_only() {
        let s = "{ \"a\": \"http://x\" } // note\n// whole line\n";
        assert_eq!(strip_comments(s), "{ \"a\": \"http://x\" } \n\n");
    }

    #[test]
    fn versions() {
        assert_eq!(
            Versions::parse("3+").unwrap(),
            Versions {
                min: 3,
                max: i16::MAX
            }
        );
        assert_eq!(Versions::parse("1-4").unwrap(), Versions { min: 1, max: 4 });
        assert!(Versions::parse("none").unwrap().is_empty());
        let v = Versions::parse("0+").unwrap();
        assert_eq!(
            v.minus(Versions::parse("3+").unwrap()),
            Versions { min: 0, max: 2 }
        );
    }
}
