use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::extensions::ParsedExtension;

use super::*;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn der_of(pem: &str) -> Vec<u8> {
    pem_contents(pem, "CERTIFICATE").expect("a PEM certificate")
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).expect("a certificate");
    assert!(rest.is_empty(), "trailing bytes after the certificate");
    cert
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    let names: Vec<_> = cert.subject().iter_common_name().map(|a| a.as_str().expect("utf-8").to_string()).collect();
    assert_eq!(names.len(), 1, "exactly one CN");
    names[0].clone()
}

fn organizations(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject().iter_organization().map(|a| a.as_str().expect("utf-8").to_string()).collect()
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
        _ => None,
    })
}

fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|id| id.0),
        _ => None,
    })
}

/// Everything a verifier checks between a leaf and our CA: the names chain, the signature is
/// the CA's, the key identifiers chain, and the leaf is no CA itself.
fn assert_issued_by_ca(leaf: &X509Certificate<'_>, ca: &X509Certificate<'_>) {
    assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    leaf.verify_signature(Some(ca.public_key())).expect("signed by the CA");
    assert_eq!(authority_key_id(leaf), subject_key_id(ca));
    assert!(subject_key_id(ca).is_some());
    let bc = leaf.basic_constraints().expect("one basicConstraints").expect("basicConstraints present");
    assert!(!bc.value.ca, "a leaf must not be a CA");
    assert_eq!(leaf.raw_serial().len(), SERIAL_BYTES);
}

fn assert_validity(cert: &X509Certificate<'_>, validity: Duration) {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    assert!((now - 70..=now - 55).contains(&not_before), "notBefore {not_before} is not about a minute before {now}");
    let expected = now + validity.as_secs() as i64;
    assert!((expected - 10..=expected + 5).contains(&not_after), "notAfter {not_after}, expected about {expected}");
}

fn pki() -> (tempfile::TempDir, Pki) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(tmp.path().join("pki")).expect("init");
    (tmp, pki)
}

#[test]
fn init_creates_private_files_and_is_idempotent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("etc/skiff/pki");
    Pki::init(&dir).expect("first init");

    assert_eq!(mode(&dir), 0o700);
    for (name, expected) in [(CA_CERT, 0o644), (CA_KEY, 0o600), (SA_KEY, 0o600), (SA_PUB, 0o644)] {
        assert_eq!(mode(&dir.join(name)), expected, "{name}");
    }
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ca.crt", "ca.key", "encryption.keys", "sa.key", "sa.pub"], "no temporary files left behind");

    let read_all = || [CA_CERT, CA_KEY, SA_KEY, SA_PUB].map(|name| fs::read(dir.join(name)).expect("read"));
    let before = read_all();
    let again = Pki::init(&dir).expect("second init");
    assert_eq!(read_all(), before, "a second init must keep the CA and the service-account key");
    assert_eq!(again.ca_pem().as_bytes(), &before[0][..]);
    assert_eq!(again.sa_key_pem().as_bytes(), &before[2][..]);
    assert_eq!(again.sa_pub_pem().as_bytes(), &before[3][..]);
}

#[test]
fn ca_is_a_self_signed_p256_ca_valid_ten_years() {
    let (_tmp, pki) = pki();
    let der = der_of(pki.ca_pem());
    let ca = parse(&der);
    assert_eq!(common_name(&ca), CA_COMMON_NAME);
    assert_eq!(ca.issuer().as_raw(), ca.subject().as_raw());
    ca.verify_signature(None).expect("self-signed");
    let bc = ca.basic_constraints().expect("one basicConstraints").expect("basicConstraints present");
    assert!(bc.critical && bc.value.ca);
    let ku = ca.key_usage().expect("one keyUsage").expect("keyUsage present").value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    assert_eq!(ca.public_key().algorithm.algorithm, x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY);
    assert_eq!(
        ca.public_key().algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()),
        Some(x509_parser::oid_registry::OID_EC_P256)
    );
    assert_validity(&ca, CA_VALIDITY);
    assert_eq!(pki.ca_not_after().unix_timestamp(), ca.validity().not_after.timestamp());
}

#[test]
fn service_account_key_is_p256_pkcs8_with_matching_public_key() {
    let (_tmp, pki) = pki();
    assert!(pki.sa_key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(pki.sa_pub_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let key = KeyPair::from_pem(pki.sa_key_pem()).expect("PKCS#8");
    assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
    assert_eq!(key.public_key_pem(), pki.sa_pub_pem());
    // Distinct from the CA: leaking token signing must not let anyone mint certificates.
    let ca_key = fs::read_to_string(pki.dir().join(CA_KEY)).expect("ca.key");
    assert_ne!(ca_key, pki.sa_key_pem());
}

#[test]
fn server_certificate_verifies_against_the_ca() {
    let (_tmp, pki) = pki();
    let sans = ["10.0.0.1", "::1", "skiff-0.example.com", "localhost"].map(String::from);
    let issued = pki.issue_server("skiff-0", &sans, 90 * DAY).expect("issue");
    let ca_der = der_of(pki.ca_pem());
    let ca = parse(&ca_der);
    let der = der_of(&issued.cert_pem);
    let cert = parse(&der);

    assert_issued_by_ca(&cert, &ca);
    assert_eq!(common_name(&cert), "skiff-0");
    assert_validity(&cert, 90 * DAY);

    let san = cert.subject_alternative_name().expect("one SAN extension").expect("SANs present");
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::IPAddress(bytes) => ips.push(match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")),
                _ => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")),
            }),
            GeneralName::DNSName(name) => dns.push(name.to_string()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(ips, ["10.0.0.1".parse::<IpAddr>().expect("ip"), "::1".parse().expect("ip")]);
    assert_eq!(dns, ["skiff-0.example.com", "localhost"]);

    let eku = cert.extended_key_usage().expect("one EKU").expect("EKU present").value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.any && eku.other.is_empty() && !eku.code_signing);
    let ku = cert.key_usage().expect("one keyUsage").expect("keyUsage present").value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());

    let key = KeyPair::from_pem(&issued.key_pem).expect("PKCS#8 key");
    assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
    assert_eq!(cert.public_key().raw, key.subject_public_key_info().as_slice());
}

#[test]
fn client_certificate_carries_user_and_groups_in_order() {
    let (_tmp, pki) = pki();
    let groups = ["system:masters", "team-b", "a group, with \"quotes\"", "zz"].map(String::from);
    let issued = pki.issue_client("jane@example.com", &groups, 30 * DAY).expect("issue");
    let ca_der = der_of(pki.ca_pem());
    let ca = parse(&ca_der);
    let der = der_of(&issued.cert_pem);
    let cert = parse(&der);

    assert_issued_by_ca(&cert, &ca);
    assert_validity(&cert, 30 * DAY);
    assert_eq!(common_name(&cert), "jane@example.com");
    assert_eq!(organizations(&cert), groups);
    // One attribute per RDN, as Go's pkix.Name writes them; groups first, then the CN.
    assert_eq!(cert.subject().iter_rdn().count(), groups.len() + 1);
    assert!(cert.subject().iter_rdn().all(|rdn| rdn.iter().count() == 1));

    let eku = cert.extended_key_usage().expect("one EKU").expect("EKU present").value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
    assert!(cert.subject_alternative_name().expect("at most one SAN").is_none());
    let key = KeyPair::from_pem(&issued.key_pem).expect("PKCS#8 key");
    assert_eq!(cert.public_key().raw, key.subject_public_key_info().as_slice());
}

#[test]
fn client_certificate_without_groups_has_only_a_cn() {
    let (_tmp, pki) = pki();
    let issued = pki.issue_client("system:kube-scheduler", &[], DAY).expect("issue");
    let ca_der = der_of(pki.ca_pem());
    let der = der_of(&issued.cert_pem);
    let cert = parse(&der);
    assert_issued_by_ca(&cert, &parse(&ca_der));
    assert_eq!(common_name(&cert), "system:kube-scheduler");
    assert!(organizations(&cert).is_empty());
}

#[test]
fn peer_certificate_is_a_serving_certificate_in_the_peer_group() {
    let (_tmp, pki) = pki();
    let sans = ["10.0.0.1", "skiff-0.example.com"].map(String::from);
    let issued = pki.issue_peer("skiff-0", &sans, 30 * DAY).expect("issue");
    let ca_der = der_of(pki.ca_pem());
    let der = der_of(&issued.cert_pem);
    let cert = parse(&der);
    assert_issued_by_ca(&cert, &parse(&ca_der));
    assert_validity(&cert, 30 * DAY);
    assert_eq!(common_name(&cert), "skiff-0");
    assert_eq!(organizations(&cert), [PEER_GROUP]);
    let eku = cert.extended_key_usage().expect("one EKU").expect("EKU present").value;
    assert!(eku.server_auth && eku.client_auth && !eku.any && eku.other.is_empty());
    let san = cert.subject_alternative_name().expect("one SAN extension").expect("SANs present");
    assert_eq!(san.value.general_names.len(), 2);
    let key = KeyPair::from_pem(&issued.key_pem).expect("PKCS#8 key");
    assert_eq!(cert.public_key().raw, key.subject_public_key_info().as_slice());
    assert_eq!(identity(&der), Some(Identity { common_name: "skiff-0".into(), groups: vec![PEER_GROUP.to_string()] }));
    assert!(matches!(pki.issue_peer("skiff-0", &[], DAY), Err(PkiError::Invalid { .. })));
}

#[test]
fn identity_reads_user_and_groups() {
    let (_tmp, pki) = pki();
    let groups = ["system:nodes", "b"].map(String::from);
    let issued = pki.issue_client("system:node:x", &groups, DAY).expect("issue");
    let id = identity(&der_of(&issued.cert_pem)).expect("identity");
    assert_eq!((id.common_name.as_str(), id.groups.as_slice()), ("system:node:x", &groups[..]));
    let server = pki.issue_server("s", &["s".to_string()], DAY).expect("issue");
    assert!(identity(&der_of(&server.cert_pem)).expect("identity").groups.is_empty());
    assert_eq!(identity(b"not a certificate"), None);
}

#[test]
fn serials_are_random() {
    let (_tmp, pki) = pki();
    let serial = |issued: &Issued| parse(&der_of(&issued.cert_pem)).raw_serial().to_vec();
    let a = pki.issue_client("u", &[], DAY).expect("issue");
    let b = pki.issue_client("u", &[], DAY).expect("issue");
    assert_ne!(serial(&a), serial(&b));
}

#[test]
fn a_reopened_pki_issues_with_the_same_ca() {
    let (_tmp, pki) = pki();
    let reopened = Pki::open(pki.dir()).expect("open");
    assert_eq!(reopened.ca_pem(), pki.ca_pem());
    let issued = reopened.issue_server("x", &["x.example".to_string()], DAY).expect("issue");
    let ca_der = der_of(pki.ca_pem());
    assert_issued_by_ca(&parse(&der_of(&issued.cert_pem)), &parse(&ca_der));
}

#[test]
fn validity_never_outlives_the_ca() {
    let (_tmp, pki) = pki();
    let issued = pki.issue_client("u", &[], 100 * 365 * DAY).expect("issue");
    let not_after = issued.not_after().expect("not_after");
    assert_eq!(not_after.unix_timestamp(), pki.ca_not_after().unix_timestamp());
}

#[test]
fn kubeconfig_embeds_the_ca_and_the_client_credentials() {
    let (_tmp, pki) = pki();
    let issued = pki.issue_client("admin", &["system:masters".to_string()], DAY).expect("issue");
    let text = kubeconfig("skiff", "https://10.0.0.1:6443", pki.ca_pem(), "admin", &issued);

    let field = |name: &str| -> Vec<u8> {
        let prefix = format!("{name}: ");
        let values: Vec<&str> = text.lines().filter_map(|l| l.trim_start().strip_prefix(&prefix)).collect();
        assert_eq!(values.len(), 1, "{name} appears once");
        base64::engine::general_purpose::STANDARD.decode(values[0]).expect("base64")
    };
    assert_eq!(field("certificate-authority-data"), pki.ca_pem().as_bytes());
    assert_eq!(field("client-certificate-data"), issued.cert_pem.as_bytes());
    assert_eq!(field("client-key-data"), issued.key_pem.as_bytes());

    let expected = "apiVersion: v1\nkind: Config\nclusters:\n- name: \"skiff\"\n  cluster:\n    server: \"https://10.0.0.1:6443\"\n";
    assert!(text.starts_with(expected), "{text}");
    for line in [
        "users:\n- name: \"admin\"\n  user:\n    client-certificate-data: ",
        "contexts:\n- name: \"admin@skiff\"\n  context:\n    cluster: \"skiff\"\n    user: \"admin\"\n",
        "\ncurrent-context: \"admin@skiff\"\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn open_on_an_empty_directory_names_ca_crt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = Pki::open(tmp.path()).expect_err("nothing to open");
    assert!(matches!(&err, PkiError::Missing { path } if path.ends_with(CA_CERT)), "{err:?}");
    assert!(err.to_string().contains("ca.crt"), "{err}");
}

#[test]
fn open_names_each_missing_file() {
    for name in [CA_KEY, SA_KEY, SA_PUB] {
        let (_tmp, pki) = pki();
        fs::remove_file(pki.dir().join(name)).expect("remove");
        let err = Pki::open(pki.dir()).expect_err("a file is missing");
        assert!(matches!(&err, PkiError::Missing { path } if path.ends_with(name)), "{name}: {err:?}");
    }
}

#[test]
fn open_rejects_a_key_that_does_not_match() {
    let (_tmp, pki) = pki();
    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    fs::write(pki.dir().join(CA_KEY), other.serialize_pem()).expect("write");
    let err = Pki::open(pki.dir()).expect_err("mismatch");
    assert!(matches!(&err, PkiError::KeyMismatch { key, .. } if key.ends_with(CA_KEY)), "{err:?}");

    let (_tmp, pki) = self::pki();
    fs::write(pki.dir().join(SA_PUB), other.public_key_pem()).expect("write");
    let err = Pki::open(pki.dir()).expect_err("mismatch");
    assert!(matches!(&err, PkiError::KeyMismatch { key, .. } if key.ends_with(SA_KEY)), "{err:?}");
}

#[test]
fn open_rejects_garbage_and_leaf_certificates_as_ca() {
    let (_tmp, pki) = pki();
    fs::write(pki.dir().join(CA_CERT), "not a certificate").expect("write");
    let err = Pki::open(pki.dir()).expect_err("garbage");
    assert!(matches!(&err, PkiError::Parse { path, .. } if path.ends_with(CA_CERT)), "{err:?}");

    let (_tmp, pki) = self::pki();
    let leaf = pki.issue_client("u", &[], DAY).expect("issue");
    leaf.write(pki.dir(), "leaf").expect("write");
    fs::rename(pki.dir().join("leaf.crt"), pki.dir().join(CA_CERT)).expect("rename");
    fs::rename(pki.dir().join("leaf.key"), pki.dir().join(CA_KEY)).expect("rename");
    let err = Pki::open(pki.dir()).expect_err("not a CA");
    assert!(matches!(&err, PkiError::Parse { path, .. } if path.ends_with(CA_CERT)), "{err:?}");
}

#[test]
fn init_refuses_to_replace_half_a_ca() {
    let (_tmp, pki) = pki();
    let ca = fs::read(pki.dir().join(CA_CERT)).expect("read");
    fs::remove_file(pki.dir().join(CA_KEY)).expect("remove");
    let err = Pki::init(pki.dir()).expect_err("incomplete");
    assert!(matches!(&err, PkiError::Incomplete { missing, .. } if missing.ends_with(CA_KEY)), "{err:?}");
    assert_eq!(fs::read(pki.dir().join(CA_CERT)).expect("read"), ca, "ca.crt untouched");
    assert!(!pki.dir().join(CA_KEY).exists());
}

#[test]
fn init_restores_a_missing_sa_pub_from_sa_key() {
    let (_tmp, pki) = pki();
    fs::remove_file(pki.dir().join(SA_PUB)).expect("remove");
    let again = Pki::init(pki.dir()).expect("init");
    assert_eq!(again.sa_pub_pem(), pki.sa_pub_pem());
    assert_eq!(mode(&pki.dir().join(SA_PUB)), 0o644);
}

#[test]
fn issued_files_are_written_with_their_modes_and_replaced_on_rotation() {
    let (tmp, pki) = pki();
    let out = tmp.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    let first = pki.issue_client("admin", &[], DAY).expect("issue");
    first.write(&out, "admin").expect("write");
    assert_eq!(mode(&out.join("admin.key")), 0o600);
    assert_eq!(mode(&out.join("admin.crt")), 0o644);
    assert_eq!(fs::read_to_string(out.join("admin.crt")).expect("read"), first.cert_pem);

    let second = pki.issue_client("admin", &[], DAY).expect("issue");
    second.write(&out, "admin").expect("rotate");
    assert_eq!(fs::read_to_string(out.join("admin.crt")).expect("read"), second.cert_pem);
    assert_eq!(fs::read_to_string(out.join("admin.key")).expect("read"), second.key_pem);
    assert_eq!(mode(&out.join("admin.key")), 0o600);
    assert_eq!(fs::read_dir(&out).expect("list").count(), 2, "no temporary files left behind");
}

#[test]
fn issued_files_never_replace_the_ca_or_the_sa_key() {
    let (_tmp, pki) = pki();
    let issued = pki.issue_client("u", &[], DAY).expect("issue");
    for stem in ["ca", "sa", "", "..", "a/b"] {
        let err = issued.write(pki.dir(), stem).expect_err(stem);
        assert!(matches!(err, PkiError::Invalid { .. }), "{stem}: {err:?}");
    }
    Pki::open(pki.dir()).expect("still intact");
}

#[test]
fn bad_arguments_are_rejected() {
    let (_tmp, pki) = pki();
    let sans = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let invalid = |r: Result<Issued, PkiError>| matches!(r, Err(PkiError::Invalid { .. }));
    assert!(invalid(pki.issue_server("x", &[], DAY)));
    for bad in ["https://x.example", "x.example:6443", "[::1]", "", "a b"] {
        assert!(invalid(pki.issue_server("x", &sans(&[bad]), DAY)), "{bad:?}");
    }
    assert!(invalid(pki.issue_server("", &sans(&["x"]), DAY)));
    assert!(invalid(pki.issue_server("x", &sans(&["x"]), Duration::ZERO)));
    assert!(invalid(pki.issue_client("", &[], DAY)));
    assert!(invalid(pki.issue_client("u", &["".to_string()], DAY)));
    assert!(invalid(pki.issue_client("u\n", &[], DAY)));
    assert!(invalid(pki.issue_client("u", &[], Duration::MAX)));
    assert!(pki.issue_server("x", &sans(&["*.svc.cluster.local"]), DAY).is_ok());
}

#[test]
fn debug_output_does_not_show_private_keys() {
    let (_tmp, pki) = pki();
    let issued = pki.issue_client("u", &[], DAY).expect("issue");
    let debug = format!("{issued:?} {pki:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}
