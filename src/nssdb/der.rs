//! Just enough DER to read NSS's encrypted attributes and to write the
//! PKCS#8 structures rustls takes: tag-length-value reading with every
//! length checked, and encoding of the few types the key rebuild needs.

#![forbid(unsafe_code)]

/// DER tags used here.
pub(crate) mod tag {
    /// INTEGER.
    pub(crate) const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub(crate) const BIT_STRING: u8 = 0x03;
    /// OCTET STRING.
    pub(crate) const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub(crate) const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub(crate) const OID: u8 = 0x06;
    /// SEQUENCE.
    pub(crate) const SEQUENCE: u8 = 0x30;
    /// Context-specific constructed [1].
    pub(crate) const CONTEXT_1: u8 = 0xa1;
}

/// A malformed or unexpected DER structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerError(pub &'static str);

impl std::fmt::Display for DerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A cursor over DER bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// True when everything has been read.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, if any.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads any element: its tag and contents.
    pub(crate) fn any(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, after_tag) = self.rest.split_first().ok_or(DerError("truncated DER"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte DER tags are not expected here"));
        }
        let (&first, mut after_len) = after_tag
            .split_first()
            .ok_or(DerError("truncated DER length"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || after_len.len() < count {
                return Err(DerError("bad DER length"));
            }
            let mut len = 0usize;
            for &b in &after_len[..count] {
                len = (len << 8) | usize::from(b);
            }
            after_len = &after_len[count..];
            len
        };
        if after_len.len() < len {
            return Err(DerError("DER element longer than its container"));
        }
        let (contents, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok((tag, contents))
    }

    /// Reads an element that must have tag `want`.
    pub(crate) fn expect(&mut self, want: u8, what: &'static str) -> Result<&'a [u8], DerError> {
        match self.any()? {
            (tag, contents) if tag == want => Ok(contents),
            _ => Err(DerError(what)),
        }
    }

    /// Reads a SEQUENCE and returns a reader over its contents.
    pub(crate) fn sequence(&mut self, what: &'static str) -> Result<Reader<'a>, DerError> {
        self.expect(tag::SEQUENCE, what).map(Reader::new)
    }

    /// Reads a non-negative INTEGER that fits in a `u32`.
    pub(crate) fn small_uint(&mut self, what: &'static str) -> Result<u32, DerError> {
        let bytes = self.expect(tag::INTEGER, what)?;
        if bytes.is_empty() || bytes[0] & 0x80 != 0 {
            return Err(DerError(what));
        }
        let bytes = strip_leading_zeros(bytes);
        if bytes.len() > 4 {
            return Err(DerError(what));
        }
        Ok(bytes.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)))
    }
}

fn strip_leading_zeros(mut bytes: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// Encodes one element.
pub(crate) fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let bytes = strip_leading_zeros(&bytes);
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// Encodes a SEQUENCE of already encoded elements.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    encode(tag::SEQUENCE, &parts.concat())
}

/// Encodes an unsigned big-endian number as an INTEGER.
pub(crate) fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let bytes = strip_leading_zeros(bytes);
    let mut contents = Vec::with_capacity(bytes.len() + 1);
    if bytes.is_empty() || bytes[0] & 0x80 != 0 {
        contents.push(0);
    }
    contents.extend_from_slice(bytes);
    encode(tag::INTEGER, &contents)
}

/// Encodes an OBJECT IDENTIFIER from its encoded contents.
pub(crate) fn oid(contents: &[u8]) -> Vec<u8> {
    encode(tag::OID, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_short_and_long_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let data = vec![7u8; len];
            let enc = encode(tag::OCTET_STRING, &data);
            let mut r = Reader::new(&enc);
            assert_eq!(r.expect(tag::OCTET_STRING, "x").unwrap(), &data[..]);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn rejects_truncation_and_overlong_lengths() {
        for bad in [
            &[0x04u8][..],
            &[0x04, 0x05, 1, 2],
            &[0x04, 0x85, 1, 1, 1, 1, 1],
            &[0x04, 0x80],
            &[0x1f, 0],
        ] {
            assert!(Reader::new(bad).any().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_are_unsigned_and_minimal() {
        assert_eq!(unsigned(&[0, 0, 0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(unsigned(&[]), vec![2, 1, 0]);
        let mut r = Reader::new(&[2, 2, 0x27, 0x10]);
        assert_eq!(r.small_uint("n").unwrap(), 10_000);
        assert!(Reader::new(&[2, 1, 0x80]).small_uint("n").is_err());
    }
}
