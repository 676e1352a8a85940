//! Private keys of key4.db: the attributes decrypted and checked against
//! their integrity codes, then rebuilt as the PKCS#8 document rustls loads.

#![forbid(unsafe_code)]

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use super::der::{self, tag, Reader};
use super::pbe::{self, PasswordKey, PbeError};
use super::sqlite::Object;
use super::{attr, Metadata};

/// Why a stored key could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// An attribute the key type needs is missing.
    Missing(&'static str),
    /// Decryption failed.
    Decrypt(&'static str, PbeError),
    /// The integrity code of an attribute is missing or wrong.
    Integrity(&'static str),
    /// A key type, size or curve rustls cannot use.
    Unsupported(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Missing(name) => write!(f, "the key has no {name} attribute"),
            KeyError::Decrypt(name, e) => write!(f, "cannot decrypt its {name}: {e}"),
            KeyError::Integrity(name) => write!(
                f,
                "its {name} fails the integrity check (the database is damaged or was tampered with)"
            ),
            KeyError::Unsupported(what) => f.write_str(what),
        }
    }
}

const CKK_RSA: u32 = 0;
const CKK_EC: u32 = 3;

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// Decrypts one private attribute and checks its integrity code.
fn private_attr(
    key: &Object,
    meta: &Metadata,
    pw: &PasswordKey,
    attr: u32,
    name: &'static str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let stored = key.get(attr).ok_or(KeyError::Missing(name))?;
    let plain = pbe::decrypt(stored, pw).map_err(|e| KeyError::Decrypt(name, e))?;
    let mac = meta
        .signature("sig_key", key.id, attr)
        .ok_or(KeyError::Integrity(name))?;
    pbe::verify_mac(mac, pw, 0, attr, &plain).map_err(|_| KeyError::Integrity(name))?;
    Ok(plain)
}

/// A clear attribute of the key, checked against its integrity code.
fn public_attr<'a>(
    key: &'a Object,
    meta: &Metadata,
    pw: &PasswordKey,
    attr: u32,
    name: &'static str,
) -> Result<&'a [u8], KeyError> {
    let value = key.get(attr).ok_or(KeyError::Missing(name))?;
    meta.verify_public("sig_key", key.id, attr, value, pw)
        .map_err(|_| KeyError::Integrity(name))?;
    Ok(value)
}

/// Rebuilds the PKCS#8 form of a key4.db private key.
pub(crate) fn pkcs8(
    key: &Object,
    meta: &Metadata,
    pw: &PasswordKey,
) -> Result<PrivateKeyDer<'static>, KeyError> {
    let doc = match key.ulong(attr::KEY_TYPE) {
        Some(CKK_RSA) => rsa(key, meta, pw)?,
        Some(CKK_EC) => ec(key, meta, pw)?,
        Some(other) => {
            return Err(KeyError::Unsupported(format!(
                "key type {other:#x} is not supported (only RSA and ECDSA keys are)"
            )))
        }
        None => return Err(KeyError::Missing("CKA_KEY_TYPE")),
    };
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(doc.to_vec())))
}

fn rsa(key: &Object, meta: &Metadata, pw: &PasswordKey) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let modulus = public_attr(key, meta, pw, attr::MODULUS, "modulus")?;
    let exponent = public_attr(key, meta, pw, attr::PUBLIC_EXPONENT, "public exponent")?;
    let bits = modulus.iter().skip_while(|&&b| b == 0).count() * 8;
    if !(2048..=8192).contains(&bits) {
        return Err(KeyError::Unsupported(format!(
            "it is a {bits}-bit RSA key; only RSA keys of 2048 to 8192 bits are supported"
        )));
    }
    let mut parts: Vec<Zeroizing<Vec<u8>>> = vec![
        Zeroizing::new(der::unsigned(&[0])),
        Zeroizing::new(der::unsigned(modulus)),
        Zeroizing::new(der::unsigned(exponent)),
    ];
    for (a, name) in [
        (attr::PRIVATE_EXPONENT, "private exponent"),
        (attr::PRIME_1, "first prime"),
        (attr::PRIME_2, "second prime"),
        (attr::EXPONENT_1, "first CRT exponent"),
        (attr::EXPONENT_2, "second CRT exponent"),
        (attr::COEFFICIENT, "CRT coefficient"),
    ] {
        let value = private_attr(key, meta, pw, a, name)?;
        parts.push(Zeroizing::new(der::unsigned(&value)));
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let rsa_key = Zeroizing::new(der::sequence(&refs));
    let alg = der::sequence(&[&der::oid(RSA_ENCRYPTION), &der::encode(tag::NULL, &[])]);
    let octets = Zeroizing::new(der::encode(tag::OCTET_STRING, &rsa_key));
    Ok(Zeroizing::new(der::sequence(&[
        &der::unsigned(&[0]),
        &alg,
        &octets,
    ])))
}

fn ec(key: &Object, meta: &Metadata, pw: &PasswordKey) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let params = key.get(attr::EC_PARAMS).ok_or(KeyError::Missing("curve"))?;
    let curve = Reader::new(params).expect(tag::OID, "curve").map_err(|_| {
        KeyError::Unsupported(
            "its curve is given by explicit parameters, which are not supported".into(),
        )
    })?;
    let size = match curve {
        P256 => 32,
        P384 => 48,
        P521 => {
            return Err(KeyError::Unsupported(
                "it is an ECDSA P-521 key; only P-256 and P-384 keys are supported".into(),
            ))
        }
        other => {
            return Err(KeyError::Unsupported(format!(
                "it is an EC key on curve {}; only P-256 and P-384 keys are supported",
                pbe::dotted(other)
            )))
        }
    };
    // NSS files no integrity code for the public point; aws-lc-rs checks that it
    // belongs to the private value, and the certificate check that follows
    // that it belongs to the certificate.
    let stored_point = key
        .get(attr::NSS_DB)
        .ok_or(KeyError::Missing("public point"))?;
    let point = if stored_point.len() == 2 * size + 1 {
        stored_point
    } else {
        Reader::new(stored_point)
            .expect(tag::OCTET_STRING, "point")
            .map_err(|_| KeyError::Missing("public point"))?
    };
    if point.len() != 2 * size + 1 || point[0] != 4 {
        return Err(KeyError::Unsupported(
            "its public point is not an uncompressed point of its curve".into(),
        ));
    }
    let scalar = private_attr(key, meta, pw, attr::VALUE, "private value")?;
    let trimmed: Vec<u8> = scalar.iter().copied().skip_while(|&b| b == 0).collect();
    let trimmed = Zeroizing::new(trimmed);
    if trimmed.len() > size {
        return Err(KeyError::Unsupported(
            "its private value is larger than its curve".into(),
        ));
    }
    let mut padded = Zeroizing::new(vec![0u8; size]);
    padded[size - trimmed.len()..].copy_from_slice(&trimmed);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let ec_key = Zeroizing::new(der::sequence(&[
        &der::unsigned(&[1]),
        &der::encode(tag::OCTET_STRING, &padded),
        &der::encode(tag::CONTEXT_1, &der::encode(tag::BIT_STRING, &bits)),
    ]));
    let alg = der::sequence(&[&der::oid(EC_PUBLIC_KEY), params]);
    let octets = Zeroizing::new(der::encode(tag::OCTET_STRING, &ec_key));
    Ok(Zeroizing::new(der::sequence(&[
        &der::unsigned(&[0]),
        &alg,
        &octets,
    ])))
}
