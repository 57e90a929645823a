//! Optional bearer-token authentication, shared by Flight SQL and HTTP.
//!
//! With a token configured, every request must carry `authorization: Bearer <token>`. Flight
//! SQL clients may instead do the Flight handshake with HTTP Basic credentials whose password
//! is the token (any user name); the handshake answers with the bearer header to use.

use crate::error::QueryError;

/// The server's credentials (none: no authentication).
#[derive(Clone, Default)]
pub struct Auth {
    token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("enabled", &self.token.is_some()).finish()
    }
}

impl Auth {
    /// Requires `token` (if `Some`).
    pub fn new(token: Option<String>) -> Self {
        Self { token: token.filter(|t| !t.is_empty()) }
    }

    /// Whether a token is required.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Checks an `authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), QueryError> {
        let Some(expected) = &self.token else { return Ok(()) };
        let presented = match authorization {
            None => return Err(QueryError::Unauthenticated("missing authorization: send 'Bearer <token>'".into())),
            Some(value) => match value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
                Some(token) => token.trim().to_owned(),
                None => match basic_password(value) {
                    Some(password) => password,
                    None => return Err(QueryError::Unauthenticated("authorization must be 'Bearer <token>'".into())),
                },
            },
        };
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(QueryError::Unauthenticated("invalid token".into()))
        }
    }

    /// The token, for the handshake reply (only after [`Auth::check`] succeeded).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// The password of an HTTP Basic `authorization` value.
fn basic_password(value: &str) -> Option<String> {
    use base64::Engine as _;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    // Padding optional: Arrow Go's Flight client (under the ADBC driver) sends it unpadded.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = engine.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, password)| password.to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_with_the_token_as_password() {
        let auth = Auth::new(Some("s3cret".into()));
        assert!(auth.check(Some("Bearer s3cret")).is_ok());
        assert!(auth.check(Some("Basic dXNlcjpzM2NyZXQ=")).is_ok()); // user:s3cret
        assert!(auth.check(Some("Basic dXNlcjpzM2NyZXQ")).is_ok(), "unpadded, as Arrow Go sends it");
        assert_eq!(auth.check(Some("Bearer nope")).unwrap_err().to_string(), "invalid token");
        assert!(auth.check(None).unwrap_err().to_string().contains("missing authorization"));
        assert!(auth.check(Some("Token s3cret")).is_err());
        assert!(Auth::new(None).check(None).is_ok());
        assert!(!Auth::new(Some(String::new())).enabled());
    }
}
