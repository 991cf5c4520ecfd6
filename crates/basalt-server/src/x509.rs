//! The subject of an X.509 certificate as Kafka's default principal builder writes it: Java's
//! `X500Principal.getName()` (RFC 2253: the last RDN first, `CN=client,OU=eng,O=Acme`).
//!
//! A minimal DER walk over the bytes rustls already verified; it never panics and answers
//! `None` for anything it does not understand.

/// `User:<subject DN>` of the DER certificate `der`, or `None` if it cannot be read.
pub fn principal_of(der: &[u8]) -> Option<String> {
    subject_dn(der).map(|dn| format!("User:{dn}"))
}

/// The subject DN of the DER certificate `der` in RFC 2253 form.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (cert, _) = read_tlv(der, 0x30)?;
    let (tbs, _) = read_tlv(cert, 0x30)?;
    let mut rest = tbs;
    // [0] version, optional.
    if rest.first() == Some(&0xa0) {
        rest = read_tlv(rest, 0xa0)?.1;
    }
    rest = read_tlv(rest, 0x02)?.1; // serial
    rest = read_tlv(rest, 0x30)?.1; // signature algorithm
    rest = read_tlv(rest, 0x30)?.1; // issuer
    rest = read_tlv(rest, 0x30)?.1; // validity
    let (subject, _) = read_tlv(rest, 0x30)?;
    let mut rdns = Vec::new();
    let mut names = subject;
    while !names.is_empty() {
        let (set, after) = read_tlv(names, 0x31)?;
        names = after;
        let mut attrs = Vec::new();
        let mut items = set;
        while !items.is_empty() {
            let (atv, after) = read_tlv(items, 0x30)?;
            items = after;
            let (oid, value) = read_tlv(atv, 0x06)?;
            let (tag, text) = read_any(value)?;
            attrs.push(format!("{}={}", oid_name(oid), escape(tag, text)));
        }
        rdns.push(attrs.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// Reads one TLV with tag `tag`; returns its content and what follows.
fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = read_tlv_any(input)?;
    (t == tag).then_some((content, rest))
}

fn read_any(input: &[u8]) -> Option<(u8, &[u8])> {
    let (t, content, _) = read_tlv_any(input)?;
    Some((t, content))
}

fn read_tlv_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*input.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let content = input.get(header..end)?;
    Some((tag, content, input.get(end..)?))
}

fn oid_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "STREET".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        other => dotted(other).unwrap_or_else(|| "?".into()),
    }
}

fn dotted(oid: &[u8]) -> Option<String> {
    let first = *oid.first()?;
    let mut parts = vec![u64::from(first / 40), u64::from(first % 40)];
    let mut value: u64 = 0;
    for b in &oid[1..] {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(value);
            value = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// A value as RFC 2253 writes it: string types escaped, anything else as `#hex`.
fn escape(tag: u8, value: &[u8]) -> String {
    // UTF8String, PrintableString, TeletexString (treated as Latin-1 ASCII), IA5String.
    let text = match tag {
        0x0c | 0x13 | 0x14 | 0x16 => std::str::from_utf8(value).ok(),
        _ => None,
    };
    let Some(text) = text else {
        let mut out = String::from("#");
        out.push_str(&format!("{tag:02x}"));
        for b in value {
            out.push_str(&format!("{b:02x}"));
        }
        return out;
    };
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn subject_in_rfc2253_order() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::CommonName, "client-1");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some("CN=client-1,O=Acme\\, Inc")
        );
        assert_eq!(
            principal_of(cert.der()).as_deref(),
            Some("User:CN=client-1,O=Acme\\, Inc")
        );
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(subject_dn(b""), None);
        assert_eq!(subject_dn(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subject_dn(&[0x30, 0x03, 0x30, 0x01]), None);
    }
}
