//! Just enough DER to give a certificate a subject rcgen cannot express.
//!
//! Kubernetes reads a client certificate's groups from its Organization attributes, one per
//! group. rcgen keeps a distinguished name as a map from attribute type to a single value, so it
//! cannot write several O attributes. We let rcgen build and sign the certificate with every
//! extension, then swap in our own subject Name and sign the TBSCertificate again with the CA key.

use base64::Engine;
use rcgen::SigningKey;

use crate::PkiError;

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_VERSION: u8 = 0xa0;

/// id-at-organizationName (2.5.4.10), DER-encoded.
const OID_ORGANIZATION: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];
/// id-at-commonName (2.5.4.3), DER-encoded.
const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

fn malformed() -> PkiError {
    PkiError::Encoding("rcgen produced a certificate of an unexpected shape")
}

/// Tag, length and content around `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// One element at the start of `input`.
struct Element<'a> {
    tag: u8,
    /// Tag, length and content.
    whole: &'a [u8],
    content: &'a [u8],
}

/// The element at the start of `input` and what follows it. Only what rcgen emits is supported:
/// single-byte tags and definite lengths.
fn next(input: &[u8]) -> Result<(Element<'_>, &[u8]), PkiError> {
    let (&tag, after_tag) = input.split_first().ok_or_else(malformed)?;
    if tag & 0x1f == 0x1f {
        return Err(malformed());
    }
    let (&first, after_len) = after_tag.split_first().ok_or_else(malformed)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > std::mem::size_of::<usize>() || after_len.len() < count {
            return Err(malformed());
        }
        let len = after_len[..count].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + count)
    };
    let end = header.checked_add(len).filter(|end| *end <= input.len()).ok_or_else(malformed)?;
    Ok((Element { tag, whole: &input[..end], content: &input[header..end] }, &input[end..]))
}

/// The content of a single element of type `tag` spanning all of `input`.
fn content_of(tag: u8, input: &[u8]) -> Result<&[u8], PkiError> {
    match next(input)? {
        (element, []) if element.tag == tag => Ok(element.content),
        _ => Err(malformed()),
    }
}

fn elements(mut content: &[u8]) -> Result<Vec<(u8, &[u8])>, PkiError> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (element, rest) = next(content)?;
        out.push((element.tag, element.whole));
        content = rest;
    }
    Ok(out)
}

fn attribute(oid: &[u8], value: &str) -> Vec<u8> {
    let mut pair = oid.to_vec();
    pair.extend(tlv(TAG_UTF8_STRING, value.as_bytes()));
    // One attribute per RDN (not a multi-valued RDN), the way Go and OpenSSL write repeated O.
    tlv(TAG_SET, &tlv(TAG_SEQUENCE, &pair))
}

/// A Name with one O attribute per group, in order, followed by the CN: the order Go's
/// `pkix.Name` produces, so tools display our subjects the way they display kubeadm's.
pub(crate) fn client_subject(user: &str, groups: &[String]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for group in groups {
        rdns.extend(attribute(OID_ORGANIZATION, group));
    }
    rdns.extend(attribute(OID_COMMON_NAME, user));
    tlv(TAG_SEQUENCE, &rdns)
}

/// `cert_der` with its subject replaced by `subject` and signed again by `signer`.
pub(crate) fn replace_subject(cert_der: &[u8], subject: &[u8], signer: &impl SigningKey) -> Result<Vec<u8>, PkiError> {
    let cert = elements(content_of(TAG_SEQUENCE, cert_der)?)?;
    let [(TAG_SEQUENCE, tbs), (TAG_SEQUENCE, algorithm), (TAG_BIT_STRING, _)] = cert.as_slice() else {
        return Err(malformed());
    };
    let mut fields = elements(content_of(TAG_SEQUENCE, tbs)?)?;
    // TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject, ...
    let subject_index = if fields.first().map(|(tag, _)| *tag) == Some(TAG_VERSION) { 5 } else { 4 };
    match fields.get_mut(subject_index) {
        Some(field @ (TAG_SEQUENCE, _)) => field.1 = subject,
        _ => return Err(malformed()),
    }
    let tbs = tlv(TAG_SEQUENCE, &fields.iter().flat_map(|(_, whole)| whole.iter().copied()).collect::<Vec<u8>>());
    let signature = signer.sign(&tbs)?;
    let mut bits = vec![0u8]; // no unused bits
    bits.extend(signature);
    let mut out = tbs;
    out.extend_from_slice(algorithm);
    out.extend(tlv(TAG_BIT_STRING, &bits));
    Ok(tlv(TAG_SEQUENCE, &out))
}

/// PEM armour, 64 columns, as OpenSSL writes it.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![0x42u8; len];
            let encoded = tlv(TAG_SEQUENCE, &content);
            let (element, rest) = next(&encoded).expect("parses");
            assert_eq!((element.tag, element.whole.len(), rest.len()), (TAG_SEQUENCE, encoded.len(), 0));
            assert_eq!(content_of(TAG_SEQUENCE, &encoded).expect("content"), &content[..]);
        }
    }

    #[test]
    fn truncated_input_is_rejected() {
        let encoded = tlv(TAG_SEQUENCE, &[1, 2, 3]);
        assert!(next(&encoded[..encoded.len() - 1]).is_err());
        assert!(next(&[TAG_SEQUENCE, 0x82, 0x01]).is_err());
        assert!(next(&[]).is_err());
    }
}
