//! The library's man page (packaging/libpcp_secure.7) documents every
//! environment variable the library reads and every tls.conf key it knows:
//! each `"PCP_*"`, `"PMCD_*"` or `"PMPROXY_*"` string in the library's
//! source (outside `env!`, which is read when the library is built) and
//! each key of its tls.conf parser (`KEYS`, `OWN_KEYS` in
//! src/tls/config.rs) must appear there as a bold name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The quoted names in `text` that start with one of `prefixes` and
/// consist of capitals, digits and '_' (or '-' and lower case for keys).
fn quoted(text: &str, prefixes: &[&str], key_chars: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices('"') {
        let rest = &text[i + 1..];
        let Some(end) = rest.find('"') else { break };
        let word = &rest[..end];
        let ok_char = |c: char| {
            if key_chars {
                c.is_ascii_lowercase() || c == '-'
            } else {
                c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
            }
        };
        if prefixes.iter().any(|p| word.starts_with(p))
            && word.chars().all(ok_char)
            && !text[..i].ends_with("env!(")
        {
            found.insert(word.to_string());
        }
    }
    found
}

fn man_page() -> String {
    std::fs::read_to_string(repo().join("packaging/libpcp_secure.7")).unwrap()
}

fn documented(page: &str, name: &str) -> bool {
    page.lines().any(|l| {
        (l.starts_with(".B ") || l.starts_with(".BR ") || l.starts_with(".TP"))
            && l.split([' ', ','])
                .any(|w| w.trim_matches(|c: char| c == '"' || c == '\\') == name)
    })
}

#[test]
fn every_environment_variable_is_in_the_man_page() {
    let mut files = Vec::new();
    sources(&repo().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        names.extend(quoted(&text, &["PCP_", "PMCD_", "PMPROXY_"], false));
    }
    assert!(names.contains("PCP_SECURE_DEBUG"), "{names:?}");
    let page = man_page();
    let missing: Vec<&String> = names.iter().filter(|n| !documented(&page, n)).collect();
    assert!(
        missing.is_empty(),
        "packaging/libpcp_secure.7 does not document {missing:?}"
    );
}

#[test]
fn every_tls_conf_key_is_in_the_man_page() {
    let text = std::fs::read_to_string(repo().join("src/tls/config.rs")).unwrap();
    // The parser's two key lists: libpcp's KEYS and our OWN_KEYS.
    let mut keys = BTreeSet::new();
    for list in ["const OWN_KEYS", "const KEYS"] {
        let start = text
            .find(list)
            .unwrap_or_else(|| panic!("{list} in config.rs"));
        let body = &text[start..];
        let end = body.find("];").expect("the list ends");
        keys.extend(quoted(&body[..end], &["tls-"], true));
    }
    assert!(
        keys.contains("tls-cert-file") && keys.contains("tls-nssdb"),
        "{keys:?}"
    );
    let page = man_page();
    let missing: Vec<&String> = keys.iter().filter(|k| !documented(&page, k)).collect();
    assert!(
        missing.is_empty(),
        "packaging/libpcp_secure.7 does not document {missing:?}"
    );
}
