//! JWTs: HS256 only, `exp` required and checked against the clock the tokens were given (the
//! system's, but in tests), with [`LEEWAY_SECS`] of leeway. Keys are built once at start.
//!
//! A token carries its user's token version (`tv`) at issue: logging out or changing the
//! password raises the version, which ends every token issued before (`revocation`). Tokens
//! issued before versions existed carry none and read as version 0, the version of every
//! account that has never ended its tokens.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use shared::clock::Clock;

use crate::error::ApiError;

/// Seconds past `exp` a token is still taken, for clocks a little apart.
pub const LEEWAY_SECS: i64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    tv: i64,
    iat: i64,
    exp: i64,
}

/// An overlay token's claims: read-only, one site and one page, for an hour. It has no `sub`,
/// so it never passes as a user's token, and a user's token has no `site`.
#[derive(Debug, Serialize, Deserialize)]
struct OverlayClaims {
    site: String,
    path: String,
    exp: i64,
}

/// How long an overlay link opens its page's attention.
pub const OVERLAY_TTL_SECS: i64 = 3600;

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl Tokens {
    pub fn new(secret: &str, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Checked in `verify` against `clock`: the library would read the system's.
        validation.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
            clock,
        }
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    /// A token for `user_id` at token version `version`, valid for the configured lifetime
    /// from now.
    pub fn issue(&self, user_id: &str, version: i64) -> Result<String, ApiError> {
        let now = self.now_secs();
        let claims = Claims { sub: user_id.to_string(), tv: version, iat: now, exp: now + self.ttl.as_secs() as i64 };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| ApiError::Internal(e.into()))
    }

    /// The user id and token version of a validly signed, unexpired token (whether that
    /// version is still the user's is for `revocation` to say).
    pub fn verify(&self, token: &str) -> Result<(String, i64), ApiError> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized("invalid token"))?
            .claims;
        if claims.exp < self.now_secs() - LEEWAY_SECS {
            return Err(ApiError::Unauthorized("token expired"));
        }
        Ok((claims.sub, claims.tv))
    }
}

impl Tokens {
    /// A token that opens the attention view of `path` of `site_id` for [`OVERLAY_TTL_SECS`]
    /// from now.
    pub fn issue_overlay(&self, site_id: &str, path: &str) -> Result<String, ApiError> {
        let exp = self.now_secs() + OVERLAY_TTL_SECS;
        let claims = OverlayClaims { site: site_id.to_string(), path: path.to_string(), exp };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| ApiError::Internal(e.into()))
    }

    /// The site and path of a validly signed, unexpired overlay token (the same leeway as a
    /// user's token).
    pub fn verify_overlay(&self, token: &str) -> Result<(String, String), ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = false;
        let claims = decode::<OverlayClaims>(token, &self.decoding, &validation)
            .map_err(|_| ApiError::Unauthorized("invalid overlay link"))?
            .claims;
        if claims.exp < self.now_secs() - LEEWAY_SECS {
            return Err(ApiError::Unauthorized("overlay link expired"));
        }
        Ok((claims.site, claims.path))
    }
}

#[cfg(test)]
mod tests {
    use shared::clock::ManualClock;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// 2026-11-25T12:00:00Z.
    const T0: i64 = 1_795_608_000_000;

    fn tokens_at(clock: &ManualClock) -> Tokens {
        Tokens::new(SECRET, Duration::from_secs(3600), Arc::new(clock.clone()))
    }

    fn signed(secret: &str, claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("encodes")
    }

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let clock = ManualClock::at(T0);
        let tokens = tokens_at(&clock);
        let t = tokens.issue("u1", 3).expect("issues");
        assert_eq!(tokens.verify(&t).expect("valid"), ("u1".to_string(), 3));
        let exp = T0 / 1000 + 600;
        let cases = [
            (
                "forged",
                signed("another secret that is long enough!!", serde_json::json!({"sub": "u1", "iat": 0, "exp": exp})),
            ),
            ("no exp", signed(SECRET, serde_json::json!({"sub": "u1", "iat": 0}))),
            ("no sub", signed(SECRET, serde_json::json!({"iat": 0, "exp": exp}))),
            ("not a token", "not.a.token".to_string()),
            // alg=none must never be accepted.
            ("alg none", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImV4cCI6OTk5OTk5OTk5OX0.".to_string()),
        ];
        for (case, token) in cases {
            assert!(matches!(tokens.verify(&token), Err(ApiError::Unauthorized("invalid token"))), "case {case}");
        }
    }

    #[test]
    fn a_token_expires_its_lifetime_and_the_leeway_after_it_was_issued() {
        let clock = ManualClock::at(T0);
        let tokens = tokens_at(&clock);
        let t = tokens.issue("u1", 0).expect("issues");
        clock.advance((3600 + LEEWAY_SECS) * 1000);
        assert!(tokens.verify(&t).is_ok(), "the last second of the leeway");
        clock.advance(1000);
        assert!(matches!(tokens.verify(&t), Err(ApiError::Unauthorized("token expired"))));
    }

    #[test]
    fn a_token_without_a_version_reads_as_version_zero() {
        let tokens = tokens_at(&ManualClock::at(T0));
        let old = signed(SECRET, serde_json::json!({"sub": "u1", "iat": 0, "exp": T0 / 1000 + 600}));
        assert_eq!(tokens.verify(&old).expect("valid"), ("u1".to_string(), 0));
    }

    #[test]
    fn overlay_tokens_open_their_page_only_and_never_pass_as_a_user() {
        let clock = ManualClock::at(T0);
        let tokens = tokens_at(&clock);
        let t = tokens.issue_overlay("site1", "/pricing").expect("issues");
        assert_eq!(tokens.verify_overlay(&t).expect("valid"), ("site1".to_string(), "/pricing".to_string()));
        assert!(tokens.verify(&t).is_err(), "an overlay token is no user token");
        let user = tokens.issue("u1", 0).expect("issues");
        assert!(tokens.verify_overlay(&user).is_err(), "a user token is no overlay token");
        clock.advance((OVERLAY_TTL_SECS + LEEWAY_SECS) * 1000);
        assert!(tokens.verify_overlay(&t).is_ok(), "the last second of the leeway");
        clock.advance(1000);
        assert!(matches!(tokens.verify_overlay(&t), Err(ApiError::Unauthorized("overlay link expired"))));
    }
}
