//! Key-exchange groups: the default list (the post-quantum hybrid
//! X25519MLKEM768 first, as OpenSSL 3.5+ does, then the classical groups
//! every older peer has) and `tls-groups`, which restricts or reorders them
//! with OpenSSL's names. The order is the order of preference: a client
//! sends key shares for the first group (and, for a hybrid, for its
//! classical half too, so that a peer without ML-KEM needs no extra round
//! trip); a server picks the first of its groups the client offers.

#![forbid(unsafe_code)]

use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::SupportedKxGroup;
use rustls::NamedGroup;

use crate::error::{Error, Result};

/// A group the library knows: its OpenSSL name, other spellings accepted
/// in `tls-groups`, and rustls' implementation.
struct Known {
    name: &'static str,
    aliases: &'static [&'static str],
    group: &'static dyn SupportedKxGroup,
}

/// Every group that can be named, in the order `tls-groups` lists them in
/// its errors.
const KNOWN: [Known; 7] = [
    Known {
        name: "X25519MLKEM768",
        aliases: &[],
        group: kx_group::X25519MLKEM768,
    },
    Known {
        name: "SecP256r1MLKEM768",
        aliases: &["P-256MLKEM768"],
        group: kx_group::SECP256R1MLKEM768,
    },
    Known {
        name: "MLKEM768",
        aliases: &[],
        group: kx_group::MLKEM768,
    },
    Known {
        name: "MLKEM1024",
        aliases: &[],
        group: kx_group::MLKEM1024,
    },
    Known {
        name: "X25519",
        aliases: &[],
        group: kx_group::X25519,
    },
    Known {
        name: "secp256r1",
        aliases: &["P-256", "prime256v1"],
        group: kx_group::SECP256R1,
    },
    Known {
        name: "secp384r1",
        aliases: &["P-384"],
        group: kx_group::SECP384R1,
    },
];

/// The groups offered and accepted when `tls-groups` is not set, most
/// preferred first: OpenSSL 3.5's default order.
const DEFAULT: [&str; 4] = ["X25519MLKEM768", "X25519", "secp256r1", "secp384r1"];

/// The groups for `tls-groups` (`None`: the default list). In FIPS mode
/// only FIPS-approved groups may be named, and the default list is cut to
/// them. Names are OpenSSL's (case does not matter), separated by `:`, `,`
/// or spaces; `DEFAULT` stands for the default list, `-name` or `!name`
/// removes a group, `?name` ignores a name this library does not know, and
/// OpenSSL 3.5's key-share marker `*` is accepted and ignored.
pub(crate) fn select(
    setting: Option<&str>,
    fips: bool,
) -> Result<Vec<&'static dyn SupportedKxGroup>> {
    let approved = |k: &&Known| !fips || k.group.fips();
    let default = || {
        DEFAULT
            .iter()
            .filter_map(|n| lookup(n))
            .filter(approved)
            .map(|k| k.group)
    };
    let Some(list) = setting else {
        return Ok(default().collect());
    };
    let mut chosen: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    let mut removed: Vec<NamedGroup> = Vec::new();
    let add = |chosen: &mut Vec<&'static dyn SupportedKxGroup>,
               g: &'static dyn SupportedKxGroup| {
        if !chosen.iter().any(|c| c.name() == g.name()) {
            chosen.push(g);
        }
    };
    for word in list.split([':', ',', ' ', '\t']).filter(|w| !w.is_empty()) {
        let word = word.trim_start_matches('*');
        if let Some(rest) = word.strip_prefix(['-', '!']) {
            removed.extend(lookup(rest.trim_start_matches('?')).map(|k| k.group.name()));
            continue;
        }
        if word.eq_ignore_ascii_case("DEFAULT") {
            for g in default() {
                add(&mut chosen, g);
            }
            continue;
        }
        let (optional, name) = match word.strip_prefix('?') {
            Some(name) => (true, name),
            None => (false, word),
        };
        let Some(known) = lookup(name) else {
            if optional {
                continue;
            }
            return Err(Error::Config(format!(
                "tls-groups: unknown or unsupported key-exchange group \"{name}\" (supported: {})",
                supported(fips)
            )));
        };
        if !approved(&known) {
            return Err(Error::Config(format!(
                "tls-groups: key-exchange group \"{name}\" is not FIPS-approved, and this FIPS build of libpcp_secure uses only approved ones (FIPS-approved: {})",
                supported(true)
            )));
        }
        add(&mut chosen, known.group);
    }
    chosen.retain(|g| !removed.contains(&g.name()));
    if chosen.is_empty() {
        return Err(Error::Config(format!(
            "tls-groups = {list}: selects no key-exchange group (supported: {})",
            supported(fips)
        )));
    }
    Ok(chosen)
}

fn lookup(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| {
        k.name.eq_ignore_ascii_case(name) || k.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The names that can be used ("X25519MLKEM768:...:secp384r1"); in FIPS
/// mode only the approved ones.
fn supported(fips: bool) -> String {
    KNOWN
        .iter()
        .filter(|k| !fips || k.group.fips())
        .map(|k| k.name)
        .collect::<Vec<_>>()
        .join(":")
}

/// OpenSSL's name of a group ("X25519MLKEM768", "secp256r1"), as logs and
/// `pcp-secure probe` print it.
pub fn name(group: NamedGroup) -> String {
    KNOWN
        .iter()
        .find(|k| k.group.name() == group)
        .map(|k| k.name.to_string())
        .unwrap_or_else(|| format!("{group:?}"))
}

/// The groups of a list by name, "X25519MLKEM768:X25519:...".
pub(crate) fn names(groups: &[&'static dyn SupportedKxGroup]) -> String {
    groups
        .iter()
        .map(|g| name(g.name()))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picked(setting: &str) -> String {
        names(&select(Some(setting), false).unwrap())
    }

    #[test]
    fn default_prefers_the_post_quantum_hybrid_then_classical_groups() {
        let groups = select(None, false).unwrap();
        assert_eq!(names(&groups), "X25519MLKEM768:X25519:secp256r1:secp384r1");
    }

    #[test]
    fn names_order_restrict_and_alias() {
        assert_eq!(picked("P-256:x25519mlkem768"), "secp256r1:X25519MLKEM768");
        assert_eq!(picked("prime256v1, P-384"), "secp256r1:secp384r1");
        assert_eq!(picked("X25519"), "X25519");
        assert_eq!(
            picked("*X25519MLKEM768:?NoSuchGroup:DEFAULT:-secp384r1"),
            "X25519MLKEM768:X25519:secp256r1"
        );
        assert_eq!(
            picked("MLKEM1024:SecP256r1MLKEM768"),
            "MLKEM1024:SecP256r1MLKEM768"
        );
    }

    #[test]
    fn unknown_names_are_errors_naming_the_setting_and_the_choices() {
        let err = select(Some("X25519:ffdhe2048"), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("tls-groups: ")
                && err.contains("\"ffdhe2048\"")
                && err.contains("X25519MLKEM768:SecP256r1MLKEM768:MLKEM768:MLKEM1024:X25519:secp256r1:secp384r1"),
            "{err}"
        );
        let err = select(Some("X25519:-X25519"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("selects no key-exchange group"), "{err}");
    }

    #[test]
    fn group_names_for_logs() {
        assert_eq!(name(NamedGroup::X25519MLKEM768), "X25519MLKEM768");
        assert_eq!(name(NamedGroup::secp256r1), "secp256r1");
        assert_eq!(name(NamedGroup::FFDHE2048), "FFDHE2048");
    }
}
