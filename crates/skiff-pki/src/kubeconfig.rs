//! kubeconfig files with embedded credentials.

use std::fmt::Write;

use base64::Engine;

use crate::Issued;

/// A kubeconfig (the `v1` `Config` kubectl and client-go read) with one cluster, one user and one
/// context, all embedded: `certificate-authority-data` is the base64 of `ca_pem`, the user's
/// `client-certificate-data`/`client-key-data` those of `credentials`. The context is named
/// `user@cluster_name` and is the current one.
///
/// `user` names the kubeconfig entry only; the identity the API server sees is the certificate's
/// CN and O attributes.
pub fn kubeconfig(cluster_name: &str, server_url: &str, ca_pem: &str, user: &str, credentials: &Issued) -> String {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let cluster = quote(cluster_name);
    let user_name = quote(user);
    let context = quote(&format!("{user}@{cluster_name}"));
    // Base64 is always a valid plain scalar; every name and the URL are quoted.
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {cluster}\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user_name}\n  \
           user:\n    \
             client-certificate-data: {cert}\n    \
             client-key-data: {key}\n\
         contexts:\n\
         - name: {context}\n  \
           context:\n    \
             cluster: {cluster}\n    \
             user: {user_name}\n\
         current-context: {context}\n\
         preferences: {{}}\n",
        server = quote(server_url),
        ca = b64(ca_pem),
        cert = b64(&credentials.cert_pem),
        key = b64(&credentials.key_pem),
    )
}

/// A YAML double-quoted scalar. Quoting everything (rather than deciding when a plain scalar is
/// safe) means a name such as `yes`, `1.0`, `null` or `a: b` stays a string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Control characters, and the characters YAML 1.1 parsers (kubectl's among them)
            // treat as line breaks, would otherwise be folded or rejected.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_yaml_would_misread() {
        assert_eq!(quote("admin"), "\"admin\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("x\ny\u{7}"), "\"x\\ny\\u0007\"");
        assert_eq!(quote("sep\u{2028}"), "\"sep\\u2028\"");
        assert_eq!(quote("système:ünïcode"), "\"système:ünïcode\"");
    }
}
