//! The secure-ack status PDU: a plaintext `PDU_ERROR` the server sends after
//! the client's credentials and before any TLS byte, telling the client
//! whether to go on with the TLS handshake (status 0) or why not.

#![forbid(unsafe_code)]

use std::os::fd::RawFd;

use crate::error::{Error, Result};
use crate::pcp;
use crate::tls::transport::{self, Deadline};

/// Encodes a 16-byte error PDU carrying `status` (big-endian fields).
pub fn encode(status: i32) -> [u8; pcp::PDU_ERROR_LEN] {
    let mut pdu = [0u8; pcp::PDU_ERROR_LEN];
    pdu[0..4].copy_from_slice(&(pcp::PDU_ERROR_LEN as i32).to_be_bytes());
    pdu[4..8].copy_from_slice(&pcp::PDU_ERROR.to_be_bytes());
    // bytes 8..12: "from" = FROM_ANON (0)
    pdu[12..16].copy_from_slice(&status.to_be_bytes());
    pdu
}

/// Checks a PDU header and returns the length of the body that follows.
pub fn body_len(header: &[u8; pcp::PDU_HEADER_LEN]) -> Result<usize> {
    let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let kind = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if kind != pcp::PDU_ERROR {
        return Err(Error::Protocol(format!(
            "expected the secure-ack status PDU (type {:#x}) but got type {kind:#x}",
            pcp::PDU_ERROR
        )));
    }
    if len != pcp::PDU_ERROR_LEN as i32 && len != pcp::PDU_XERROR_LEN as i32 {
        return Err(Error::Protocol(format!(
            "secure-ack status PDU has bad length {len}"
        )));
    }
    Ok(len as usize - pcp::PDU_HEADER_LEN)
}

/// Decodes the status from the body (code, and for the 20-byte form a datum,
/// whose code uses PCP 1.x numbering).
pub fn status(body: &[u8]) -> i32 {
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    if body.len() + pcp::PDU_HEADER_LEN == pcp::PDU_XERROR_LEN {
        pcp::error_from_v1(code)
    } else {
        code
    }
}

/// Sends the status PDU.
pub(crate) fn send(fd: RawFd, status: i32, deadline: Deadline) -> Result<()> {
    transport::write_all(
        fd,
        &encode(status),
        deadline,
        "sending the secure-ack status",
    )
}

/// Reads the status PDU and returns the server's status.
pub fn read(fd: RawFd, deadline: Deadline) -> Result<i32> {
    let what = "the server's secure-ack status";
    let mut header = [0u8; pcp::PDU_HEADER_LEN];
    transport::read_exact(fd, &mut header, deadline, what)?;
    let mut body = vec![0u8; body_len(&header)?];
    transport::read_exact(fd, &mut body, deadline, what)?;
    Ok(status(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_bytes() {
        assert_eq!(
            encode(0),
            [0, 0, 0, 0x10, 0, 0, 0x70, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let e = encode(-95);
        assert_eq!(&e[12..], &(-95i32).to_be_bytes());
    }

    #[test]
    fn round_trips_and_rejects_other_pdus() {
        let pdu = encode(pcp::PM_ERR_NOTCONN);
        let header: [u8; 12] = pdu[..12].try_into().unwrap();
        assert_eq!(body_len(&header).unwrap(), 4);
        assert_eq!(status(&pdu[12..]), pcp::PM_ERR_NOTCONN);
        let mut creds = header;
        creds[6..8].copy_from_slice(&[0x70, 0x0c]);
        assert!(matches!(body_len(&creds), Err(Error::Protocol(_))));
        let mut huge = header;
        huge[0..4].copy_from_slice(&1_000_000i32.to_be_bytes());
        assert!(matches!(body_len(&huge), Err(Error::Protocol(_))));
    }

    #[test]
    fn extended_form_uses_v1_numbering() {
        // PM_ERR_NOTCONN (-12391) in 1.x numbering is -1046.
        let mut body = (-1046i32).to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(status(&body), pcp::PM_ERR_NOTCONN);
    }
}
