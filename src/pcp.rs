//! Numeric values of PCP's protocol and error conventions that the library
//! must speak (see `pcp-wire-protocol-and-abi.md`, sections 1 and 2).

#![forbid(unsafe_code)]

/// `PDU_ERROR`: the PDU type of the challenge and of the secure-ack status.
pub const PDU_ERROR: i32 = 0x7000;
/// `PDU_CREDS`: the client's credentials (its version and flags).
pub const PDU_CREDS: i32 = 0x700c;
/// Credential type `CVERSION` (byte 0 of a credential on the wire).
pub const CVERSION: u8 = 1;
/// `PDU_VERSION` (2), as a credential carries it (byte 1).
pub const PDU_VERSION: u8 = 2;
/// Length of a PDU header (len, type, from), all big-endian 32-bit.
pub const PDU_HEADER_LEN: usize = 12;
/// Length of a plain error PDU (`p_error_t`): header plus one code.
pub const PDU_ERROR_LEN: usize = 16;
/// Length of an extended error PDU (`x_error_t`): header, code and datum.
pub const PDU_XERROR_LEN: usize = 20;

/// Connection flag: TLS.
pub const PDU_FLAG_SECURE: i32 = 1 << 0;
/// Connection flag: NSS-era deflate compression (never supported).
pub const PDU_FLAG_COMPRESS: i32 = 1 << 1;
/// Connection flag: SASL authentication.
pub const PDU_FLAG_AUTH: i32 = 1 << 2;
/// Connection flag: pmcd requires user credentials (`pmcd -S`).
pub const PDU_FLAG_CREDS_REQD: i32 = 1 << 3;
/// Connection flag: the server sends a status PDU before TLS starts.
pub const PDU_FLAG_SECURE_ACK: i32 = 1 << 4;
/// Connection flag: a container attribute follows the handshake.
pub const PDU_FLAG_CONTAINER: i32 = 1 << 6;
/// Connection flag: pmcd requires a client certificate (`pmcd -Q`).
pub const PDU_FLAG_CERT_REQD: i32 = 1 << 7;

/// The flags a server handshake accepts; anything else is a protocol error.
pub const SERVER_HANDSHAKE_FLAGS: i32 = PDU_FLAG_SECURE
    | PDU_FLAG_SECURE_ACK
    | PDU_FLAG_COMPRESS
    | PDU_FLAG_AUTH
    | PDU_FLAG_CREDS_REQD
    | PDU_FLAG_CONTAINER
    | PDU_FLAG_CERT_REQD;

/// The flags after which the server reads more from the client at once,
/// inside TLS (SASL's exchange, pmcd's container attribute), so that the
/// server handshake has to be complete when `__pmSecureServerHandshake`
/// returns.
pub const SYNC_AFTER_TLS_FLAGS: i32 = PDU_FLAG_AUTH | PDU_FLAG_CREDS_REQD | PDU_FLAG_CONTAINER;

/// The flags this library consumes itself; the rest goes to libpcp.
pub const TLS_FLAGS: i32 = PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK | PDU_FLAG_CERT_REQD;

/// `PM_SERVER_FEATURE_SECURE`.
pub const FEATURE_SECURE: i32 = 0;
/// `PM_SERVER_FEATURE_COMPRESS`.
pub const FEATURE_COMPRESS: i32 = 1;
/// `PM_SERVER_FEATURE_CERT_REQD`.
pub const FEATURE_CERT_REQD: i32 = 9;

/// `PM_ERR_TIMEOUT`: "Timeout waiting for a response from PMCD".
pub const PM_ERR_TIMEOUT: i32 = -12353;
/// `PM_ERR_IPC`: "IPC protocol failure".
pub const PM_ERR_IPC: i32 = -12366;
/// `PM_ERR_NOTCONN`: "Not Connected".
pub const PM_ERR_NOTCONN: i32 = -12391;
/// `PM_ERR_NEEDCLIENTCERT`: "PMCD requires a client certificate".
pub const PM_ERR_NEEDCLIENTCERT: i32 = -12408;
/// `PM_ERR_TLS`: "TLS protocol failure".
pub const PM_ERR_TLS: i32 = -12414;
/// `PM_ERR_NYI`: the sentinel below which wrapped library errors are encoded.
pub const PM_ERR_NYI: i32 = -21344;

/// Turns a status from a PCP 1.x numbered extended error PDU into the
/// current numbering (codes at or below -1000 were shifted). A code so
/// negative that the shift would overflow is not a PCP status at all: it
/// becomes `PM_ERR_IPC`.
pub fn error_from_v1(code: i32) -> i32 {
    if code <= -1000 {
        code.checked_add(1000 - 12345).unwrap_or(PM_ERR_IPC)
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_codes_shift_and_never_overflow() {
        assert_eq!(error_from_v1(0), 0);
        assert_eq!(error_from_v1(-5), -5);
        assert_eq!(error_from_v1(-1046), PM_ERR_NOTCONN);
        assert_eq!(error_from_v1(i32::MIN), PM_ERR_IPC);
    }
}
