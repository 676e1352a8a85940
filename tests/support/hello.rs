//! The plaintext start of a recorded TLS 1.3 handshake: what the
//! ClientHello offers and what the ServerHello (and a HelloRetryRequest)
//! chose, read from the TLS records the wire tests record. For the key
//! exchange tests (which group each pair of peers agrees on) and the FIPS
//! tests (which suites and groups are offered at all). Reading stops at
//! the first record that is neither handshake nor change_cipher_spec: TLS
//! 1.3 encrypts the rest.

use crate::{parse_opening, Recording};

/// IANA code of X25519MLKEM768.
pub const X25519MLKEM768: u16 = 0x11ec;
/// IANA code of SecP256r1MLKEM768.
pub const SECP256R1MLKEM768: u16 = 0x11eb;
/// IANA code of X25519.
pub const X25519: u16 = 0x001d;
/// IANA code of secp256r1 (P-256).
pub const SECP256R1: u16 = 0x0017;
/// IANA code of secp384r1 (P-384).
pub const SECP384R1: u16 = 0x0018;

/// The ServerHello random that marks a HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// The name of a group code, as OpenSSL spells it ("other" for the rest).
pub fn group_name(code: u16) -> &'static str {
    match code {
        X25519MLKEM768 => "X25519MLKEM768",
        SECP256R1MLKEM768 => "SecP256r1MLKEM768",
        X25519 => "X25519",
        SECP256R1 => "secp256r1",
        SECP384R1 => "secp384r1",
        _ => "other",
    }
}

/// What one TLS 1.3 handshake shows in plaintext.
#[derive(Debug, Default)]
pub struct Hellos {
    /// The client's cipher suites, in its order.
    pub suites: Vec<u16>,
    /// The client's supported_groups, most preferred first.
    pub offered: Vec<u16>,
    /// The groups of the client's first key shares.
    pub shares: Vec<u16>,
    /// Whether the server asked for another key share (HelloRetryRequest).
    pub retry: bool,
    /// The suite of the server's (last) ServerHello.
    pub suite: Option<u16>,
    /// The group of the server's (last) key share: the one agreed.
    pub chosen: Option<u16>,
}

impl Hellos {
    /// The group agreed; panics (naming what was seen) when the server sent
    /// no TLS 1.3 key share.
    pub fn group(&self) -> u16 {
        self.chosen
            .unwrap_or_else(|| panic!("no ServerHello key share (TLS 1.2?): {self:?}"))
    }

    /// The suite the server chose; panics when there was no ServerHello.
    pub fn suite(&self) -> u16 {
        self.suite
            .unwrap_or_else(|| panic!("no ServerHello: {self:?}"))
    }
}

/// Handshake messages (type, body) in the plaintext records at the start
/// of `bytes` (change_cipher_spec records skipped).
fn handshake_messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut stream = Vec::new();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        let len = u16::from_be_bytes([bytes[i + 3], bytes[i + 4]]) as usize;
        let Some(body) = bytes.get(i + 5..i + 5 + len) else {
            break;
        };
        match bytes[i] {
            22 => stream.extend_from_slice(body),
            20 => {}
            _ => break,
        }
        i += 5 + len;
    }
    let mut out = Vec::new();
    let mut j = 0;
    while j + 4 <= stream.len() {
        let len = u32::from_be_bytes([0, stream[j + 1], stream[j + 2], stream[j + 3]]) as usize;
        let Some(body) = stream.get(j + 4..j + 4 + len) else {
            break;
        };
        out.push((stream[j], body.to_vec()));
        j += 4 + len;
    }
    out
}

fn u16s(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// A hello's cipher suites (the client's list, or the server's one) and
/// extensions (type, data); whatever is cut short is left out.
fn parse_hello(hello: &[u8], client: bool) -> (Vec<u16>, Vec<(u16, Vec<u8>)>) {
    let get = |i: usize| hello.get(i).copied().unwrap_or(0) as usize;
    let mut i = 2 + 32; // version, random
    i += 1 + get(i); // session id
    let suites = if client {
        let len = get(i) << 8 | get(i + 1);
        let suites = u16s(hello.get(i + 2..i + 2 + len).unwrap_or_default());
        i += 2 + len;
        i += 1 + get(i); // compression methods
        suites
    } else {
        let suite = (get(i) << 8 | get(i + 1)) as u16;
        i += 2 + 1; // suite, compression
        vec![suite]
    };
    let end = (i + 2 + (get(i) << 8 | get(i + 1))).min(hello.len());
    i += 2;
    let mut extensions = Vec::new();
    while i + 4 <= end {
        let kind = (get(i) << 8 | get(i + 1)) as u16;
        let len = get(i + 2) << 8 | get(i + 3);
        let Some(data) = hello.get(i + 4..i + 4 + len) else {
            break;
        };
        extensions.push((kind, data.to_vec()));
        i += 4 + len;
    }
    (suites, extensions)
}

/// The hellos of one recorded TLS connection, from the byte offsets where
/// TLS begins in each direction.
pub fn hellos(c2s: &[u8], s2c: &[u8]) -> Hellos {
    let mut h = Hellos::default();
    let client = handshake_messages(c2s);
    let (_, ch) = client
        .iter()
        .find(|(t, _)| *t == 1)
        .unwrap_or_else(|| panic!("no ClientHello in {} bytes", c2s.len()));
    let (suites, extensions) = parse_hello(ch, true);
    h.suites = suites;
    for (kind, data) in extensions {
        match kind {
            10 if data.len() >= 2 => h.offered = u16s(&data[2..]),
            51 => {
                let mut k = 2;
                while k + 4 <= data.len() {
                    h.shares.push(u16::from_be_bytes([data[k], data[k + 1]]));
                    k += 4 + u16::from_be_bytes([data[k + 2], data[k + 3]]) as usize;
                }
            }
            _ => {}
        }
    }
    for (_, sh) in handshake_messages(s2c).iter().filter(|(t, _)| *t == 2) {
        h.retry |= sh.get(2..34) == Some(&HRR_RANDOM[..]);
        let (suite, extensions) = parse_hello(sh, false);
        h.suite = suite.first().copied();
        // After a retry request the real ServerHello follows (answering
        // the client's second hello): the last key share is the one agreed.
        if let Some((_, data)) = extensions
            .into_iter()
            .find(|(k, d)| *k == 51 && d.len() >= 2)
        {
            h.chosen = Some(u16::from_be_bytes([data[0], data[1]]));
        }
    }
    h
}

/// The hellos of a recorded PCP connection upgraded to TLS (after its
/// plaintext opening, whose secure ack must allow TLS).
pub fn pcp_hellos(rec: &Recording) -> Hellos {
    let opening = parse_opening(rec).unwrap_or_else(|e| panic!("bad PCP opening: {e}"));
    assert_eq!(opening.ack, Some(0), "the secure ack must allow TLS");
    hellos(&rec.c2s[opening.c2s_rest..], &rec.s2c[opening.s2c_rest..])
}
