//! NSS's password-based encryption and integrity codes: the password key,
//! PBES2 (PBKDF2 + AES-CBC), the legacy PBE-SHA1-3DES scheme, and PBMAC1.

#![forbid(unsafe_code)]

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use aws_lc_rs::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;
use zeroize::Zeroizing;

use super::der::{tag, DerError, Reader};

/// Why an encrypted or authenticated value could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PbeError {
    /// The structure is not what NSS writes.
    Malformed(DerError),
    /// An algorithm this reader does not implement (its OID, dotted).
    Unsupported(String),
    /// The padding is wrong after decryption: wrong password or damage.
    BadDecrypt,
    /// The integrity code does not match.
    BadMac,
}

impl From<DerError> for PbeError {
    fn from(e: DerError) -> Self {
        PbeError::Malformed(e)
    }
}

impl std::fmt::Display for PbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PbeError::Malformed(e) => write!(f, "malformed encrypted value ({e})"),
            PbeError::Unsupported(oid) => write!(f, "unsupported algorithm {oid}"),
            PbeError::BadDecrypt => {
                f.write_str("decryption failed (wrong password or damaged value)")
            }
            PbeError::BadMac => f.write_str("integrity code does not match"),
        }
    }
}

// Encoded OID contents.
const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const PBMAC1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0e];
const HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const PBE_SHA1_3DES: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x05, 0x01, 0x03,
];

/// Iteration counts above this are refused (NSS uses 1 or 10 000); a
/// hostile file must not make us spin for hours.
const MAX_ITERATIONS: u32 = 1_000_000;

/// The key NSS derives from the database's global salt and the password.
pub(crate) struct PasswordKey(Zeroizing<Vec<u8>>);

impl PasswordKey {
    /// `SHA-1(salt || password)`, or SHA-384 for 48-byte salts (newer NSS).
    pub(crate) fn new(global_salt: &[u8], password: &[u8]) -> PasswordKey {
        let alg = if global_salt.len() == 48 {
            &digest::SHA384
        } else {
            &digest::SHA1_FOR_LEGACY_USE_ONLY
        };
        let mut ctx = digest::Context::new(alg);
        ctx.update(global_salt);
        ctx.update(password);
        PasswordKey(Zeroizing::new(ctx.finish().as_ref().to_vec()))
    }
}

/// Dotted form of an encoded OID, for messages.
pub(crate) fn dotted(oid: &[u8]) -> String {
    x509_parser::der_parser::oid::Oid::new(std::borrow::Cow::Borrowed(oid)).to_id_string()
}

/// PBKDF2 parameters: salt, iterations, key length, PRF.
struct Pbkdf2Params<'a> {
    salt: &'a [u8],
    iterations: NonZeroU32,
    key_len: Option<usize>,
    prf: pbkdf2::Algorithm,
}

fn read_pbkdf2<'a>(kdf: &mut Reader<'a>) -> Result<Pbkdf2Params<'a>, PbeError> {
    let mut alg = kdf.sequence("PBKDF2 algorithm")?;
    let oid = alg.expect(tag::OID, "PBKDF2 OID")?;
    if oid != PBKDF2 {
        return Err(PbeError::Unsupported(dotted(oid)));
    }
    let mut params = alg.sequence("PBKDF2 parameters")?;
    let salt = params.expect(tag::OCTET_STRING, "PBKDF2 salt")?;
    let iterations = params.small_uint("PBKDF2 iteration count")?;
    let iterations = NonZeroU32::new(iterations)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or(PbeError::Malformed(DerError(
            "PBKDF2 iteration count out of range",
        )))?;
    let mut key_len = None;
    if params.peek_tag() == Some(tag::INTEGER) {
        let len = params.small_uint("PBKDF2 key length")?;
        if !(1..=64).contains(&len) {
            return Err(PbeError::Malformed(DerError(
                "PBKDF2 key length out of range",
            )));
        }
        key_len = Some(len as usize);
    }
    let mut prf = pbkdf2::PBKDF2_HMAC_SHA1;
    if params.peek_tag() == Some(tag::SEQUENCE) {
        let mut prf_alg = params.sequence("PBKDF2 PRF")?;
        let oid = prf_alg.expect(tag::OID, "PBKDF2 PRF OID")?;
        prf = match oid {
            HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
            HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
            HMAC_SHA384 => pbkdf2::PBKDF2_HMAC_SHA384,
            HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
            other => return Err(PbeError::Unsupported(dotted(other))),
        };
    }
    Ok(Pbkdf2Params {
        salt,
        iterations,
        key_len,
        prf,
    })
}

impl Pbkdf2Params<'_> {
    fn derive(&self, key: &PasswordKey, default_len: usize) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; self.key_len.unwrap_or(default_len)]);
        pbkdf2::derive(self.prf, self.iterations, self.salt, &key.0, &mut out);
        out
    }
}

/// Decrypts one encrypted attribute value: `SEQ{AlgorithmIdentifier,
/// OCTET STRING}` as NSS stores it.
pub(crate) fn decrypt(value: &[u8], key: &PasswordKey) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    let mut outer = Reader::new(value).sequence("encrypted value")?;
    let mut alg = outer.sequence("encryption algorithm")?;
    let ciphertext = outer.expect(tag::OCTET_STRING, "ciphertext")?;
    let oid = alg.expect(tag::OID, "encryption OID")?;
    match oid {
        PBES2 => {
            let mut params = alg.sequence("PBES2 parameters")?;
            let kdf = read_pbkdf2(&mut params)?;
            let mut scheme = params.sequence("PBES2 encryption scheme")?;
            let cipher = scheme.expect(tag::OID, "cipher OID")?;
            let key_len = match cipher {
                AES128_CBC => 16,
                AES256_CBC => 32,
                other => return Err(PbeError::Unsupported(dotted(other))),
            };
            let (iv_tag, iv) = scheme.any()?;
            if iv_tag != tag::OCTET_STRING {
                return Err(PbeError::Malformed(DerError("AES IV")));
            }
            let iv = aes_iv(iv)?;
            if kdf.key_len.is_some_and(|l| l != key_len) {
                return Err(PbeError::Malformed(DerError(
                    "PBKDF2 key length does not fit the cipher",
                )));
            }
            let derived = kdf.derive(key, key_len);
            aes_cbc(&derived, &iv, ciphertext)
        }
        PBE_SHA1_3DES => {
            let mut params = alg.sequence("PBE parameters")?;
            let salt = params.expect(tag::OCTET_STRING, "PBE salt")?;
            let iterations = params.small_uint("PBE iteration count")?;
            if iterations == 0 || iterations > MAX_ITERATIONS || salt.len() > 20 {
                return Err(PbeError::Malformed(DerError("PBE parameters out of range")));
            }
            let (des_key, iv) = legacy_key_iv(key, salt, iterations);
            des3_cbc(&des_key, &iv, ciphertext)
        }
        other => Err(PbeError::Unsupported(dotted(other))),
    }
}

/// The AES IV: 16 bytes as stored, or (NSS's quirk) the 16-byte DER
/// encoding of a 14-byte OCTET STRING.
fn aes_iv(stored: &[u8]) -> Result<[u8; 16], PbeError> {
    let mut iv = [0u8; 16];
    match stored.len() {
        16 => iv.copy_from_slice(stored),
        14 => {
            iv[0] = tag::OCTET_STRING;
            iv[1] = 14;
            iv[2..].copy_from_slice(stored);
        }
        _ => return Err(PbeError::Malformed(DerError("AES IV length"))),
    }
    Ok(iv)
}

/// Key and IV of the legacy PBE-SHA1-3DES scheme (as NSS's softoken
/// derives them for key databases).
fn legacy_key_iv(key: &PasswordKey, salt: &[u8], iterations: u32) -> (Zeroizing<Vec<u8>>, [u8; 8]) {
    let mut h = {
        let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&key.0);
        ctx.update(salt);
        Zeroizing::new(ctx.finish().as_ref().to_vec())
    };
    for _ in 1..iterations {
        h = Zeroizing::new(
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &h)
                .as_ref()
                .to_vec(),
        );
    }
    let mac_key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &h);
    let mut state = Zeroizing::new([0u8; 20].to_vec());
    state[..salt.len()].copy_from_slice(salt);
    let mut out = Zeroizing::new(Vec::with_capacity(40));
    while out.len() < 40 {
        let mut ctx = hmac::Context::with_key(&mac_key);
        ctx.update(&state);
        ctx.update(salt);
        out.extend_from_slice(ctx.sign().as_ref());
        state = Zeroizing::new(hmac::sign(&mac_key, &state).as_ref().to_vec());
    }
    let mut iv = [0u8; 8];
    iv.copy_from_slice(&out[32..40]);
    (Zeroizing::new(out[..24].to_vec()), iv)
}

/// Keeps the plaintext of a decrypted buffer whose PKCS#7 padding
/// (checked by the cipher crate) is `len` bytes long.
fn keep(mut buf: Zeroizing<Vec<u8>>, len: usize) -> Zeroizing<Vec<u8>> {
    buf.truncate(len);
    buf
}

fn aes_cbc(key: &[u8], iv: &[u8; 16], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(PbeError::BadDecrypt);
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| PbeError::BadDecrypt)?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|plain| plain.len()),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| PbeError::BadDecrypt)?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map(|plain| plain.len()),
    };
    Ok(keep(buf, len.map_err(|_| PbeError::BadDecrypt)?))
}

fn des3_cbc(key: &[u8], iv: &[u8; 8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    if ciphertext.is_empty() || ciphertext.len() % 8 != 0 {
        return Err(PbeError::BadDecrypt);
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv)
        .map_err(|_| PbeError::BadDecrypt)?
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| PbeError::BadDecrypt)?
        .len();
    Ok(keep(buf, len))
}

/// Checks a PBMAC1 integrity code over `be32(object) || be32(attribute)
/// || plaintext`.
pub(crate) fn verify_mac(
    stored: &[u8],
    key: &PasswordKey,
    object: u32,
    attribute: u32,
    plaintext: &[u8],
) -> Result<(), PbeError> {
    let mut outer = Reader::new(stored).sequence("integrity entry")?;
    let mut alg = outer.sequence("integrity algorithm")?;
    let mac = outer.expect(tag::OCTET_STRING, "integrity code")?;
    let oid = alg.expect(tag::OID, "integrity OID")?;
    if oid != PBMAC1 {
        return Err(PbeError::Unsupported(dotted(oid)));
    }
    let mut params = alg.sequence("PBMAC1 parameters")?;
    let kdf = read_pbkdf2(&mut params)?;
    let mut scheme = params.sequence("PBMAC1 scheme")?;
    let (hmac_alg, default_len) = match scheme.expect(tag::OID, "HMAC OID")? {
        HMAC_SHA1 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
        HMAC_SHA256 => (hmac::HMAC_SHA256, 32),
        HMAC_SHA384 => (hmac::HMAC_SHA384, 48),
        HMAC_SHA512 => (hmac::HMAC_SHA512, 64),
        other => return Err(PbeError::Unsupported(dotted(other))),
    };
    let derived = kdf.derive(key, default_len);
    let mac_key = hmac::Key::new(hmac_alg, &derived);
    let mut message = Zeroizing::new(Vec::with_capacity(8 + plaintext.len()));
    message.extend_from_slice(&object.to_be_bytes());
    message.extend_from_slice(&attribute.to_be_bytes());
    message.extend_from_slice(plaintext);
    hmac::verify(&mac_key, &message, mac).map_err(|_| PbeError::BadMac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nssdb::der;

    #[test]
    fn dotted_names() {
        assert_eq!(dotted(PBES2), "1.2.840.113549.1.5.13");
        assert_eq!(dotted(AES256_CBC), "2.16.840.1.101.3.4.1.42");
        // Hostile encodings are described, never a panic.
        for hostile in [&[][..], &[0x80], &[0xff; 40], &[0x2a, 0x86, 0xff]] {
            let _ = dotted(hostile);
        }
    }

    #[test]
    fn password_key_uses_sha384_for_long_salts() {
        assert_eq!(PasswordKey::new(&[1; 20], b"x").0.len(), 20);
        assert_eq!(PasswordKey::new(&[1; 48], b"x").0.len(), 48);
    }

    #[test]
    fn hostile_values_are_errors() {
        let key = PasswordKey::new(&[0; 20], b"");
        let huge_iterations = der::sequence(&[
            &der::sequence(&[
                &der::oid(PBES2),
                &der::sequence(&[
                    &der::sequence(&[
                        &der::oid(PBKDF2),
                        &der::sequence(&[
                            &der::encode(tag::OCTET_STRING, &[1; 32]),
                            &der::unsigned(&[0xff, 0xff, 0xff, 0xff]),
                        ]),
                    ]),
                    &der::sequence(&[
                        &der::oid(AES256_CBC),
                        &der::encode(tag::OCTET_STRING, &[0; 14]),
                    ]),
                ]),
            ]),
            &der::encode(tag::OCTET_STRING, &[0; 16]),
        ]);
        assert!(matches!(
            decrypt(&huge_iterations, &key),
            Err(PbeError::Malformed(_))
        ));
        assert!(matches!(
            decrypt(&[0x30, 0x00], &key),
            Err(PbeError::Malformed(_))
        ));
        let unknown = der::sequence(&[
            &der::sequence(&[&der::oid(&[0x2a, 0x03])]),
            &der::encode(tag::OCTET_STRING, &[]),
        ]);
        assert_eq!(
            decrypt(&unknown, &key),
            Err(PbeError::Unsupported("1.2.3".into()))
        );
    }

    #[test]
    fn pkcs7_padding_is_checked() {
        use des::cipher::{block_padding::NoPadding, BlockEncryptMut};
        let (key, iv) = ([7u8; 24], [1u8; 8]);
        let encrypt = |block: [u8; 8]| {
            let mut buf = block.to_vec();
            cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(&mut buf, 8)
                .unwrap();
            buf
        };
        let plain = des3_cbc(&key, &iv, &encrypt([1, 2, 3, 4, 5, 3, 3, 3])).unwrap();
        assert_eq!(&plain[..], &[1, 2, 3, 4, 5]);
        assert!(des3_cbc(&key, &iv, &encrypt([1, 2, 3, 4, 5, 2, 3, 3])).is_err());
        assert!(des3_cbc(&key, &iv, &encrypt([0; 8])).is_err());
        assert!(des3_cbc(&key, &iv, &encrypt([9; 8])).is_err());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn legacy_3des_round_trip() {
        // Encrypt with the derived key and IV through the cipher crate
        // directly, then decrypt through the public entry point.
        use des::cipher::{block_padding::Pkcs7, BlockEncryptMut};
        let key = PasswordKey::new(&[5; 20], b"secret");
        let salt = [9u8; 20];
        let (k, iv) = legacy_key_iv(&key, &salt, 1);
        // Known answer computed independently (Python hashlib/hmac, after
        // the published key4.db 3DES derivation).
        assert_eq!(hex(&k), "4058f6228aa8fac0d97c67227ada654bec81bd348649e1e0");
        assert_eq!(hex(&iv), "8c129d2f552fa9cb");
        let plain = b"0123456789abcdef-private";
        let ct = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&k, &iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(plain);
        let value = der::sequence(&[
            &der::sequence(&[
                &der::oid(PBE_SHA1_3DES),
                &der::sequence(&[&der::encode(tag::OCTET_STRING, &salt), &der::unsigned(&[1])]),
            ]),
            &der::encode(tag::OCTET_STRING, &ct),
        ]);
        assert_eq!(&decrypt(&value, &key).unwrap()[..], plain);
        let wrong = PasswordKey::new(&[5; 20], b"other");
        assert!(decrypt(&value, &wrong)
            .map(|p| p.to_vec() != plain.to_vec())
            .unwrap_or(true));
    }
}
