//! Credentials: Argon2id password hashes and HS256 access tokens.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use jwt_simple::prelude::{
    Claims, Duration, HS256Key, MACLike, NoCustomClaims, VerificationOptions,
};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Clock skew accepted on `exp`/`nbf`. jwt-simple's default is 15 minutes, far too lenient
/// for tokens that live an hour.
const TOKEN_CLOCK_TOLERANCE_SECS: u64 = 5;
const KEY_LEN: usize = 32;

fn argon2() -> Argon2<'static> {
    // OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| format!("password hashing failed: {err}"))
}

/// Verifies a password against a stored hash; `None` (unknown user) checks against a
/// fixed hash so both failures cost the same time.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let candidate = stored.unwrap_or(DUMMY_HASH);
    let Ok(parsed) = PasswordHash::new(candidate) else {
        return false;
    };
    let matches = argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && stored.is_some()
}

/// The hash of a random password with our parameters; no password matches it in practice.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7mnSvnVVQfF+6V/9l6lN8QOTbnuQ91qV5yXqY0o2w4E";

/// Signs and verifies access tokens.
pub struct TokenKeys {
    key: HS256Key,
    ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> TokenKeys {
        TokenKeys {
            key: HS256Key::from_bytes(secret),
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: i64) -> Result<String, String> {
        let claims =
            Claims::create(Duration::from_secs(self.ttl_secs)).with_subject(user_id.to_string());
        self.key
            .authenticate(claims)
            .map_err(|err| format!("token signing failed: {err}"))
    }

    /// The user id a valid token names. Rejects a bad signature, any `alg` but HS256, a
    /// missing or passed `exp`, and a `sub` that is not a positive id.
    pub fn verify(&self, token: &str) -> Option<i64> {
        let options = VerificationOptions {
            time_tolerance: Some(Duration::from_secs(TOKEN_CLOCK_TOLERANCE_SECS)),
            // A token may not claim a longer life than we ever issue.
            max_validity: Some(Duration::from_secs(
                self.ttl_secs + TOKEN_CLOCK_TOLERANCE_SECS,
            )),
            max_token_length: Some(4096),
            ..VerificationOptions::default()
        };
        let claims = self
            .key
            .verify_token::<NoCustomClaims>(token, Some(options))
            .ok()?;
        // jwt-simple checks `exp` only when present; a token without one never expires, so
        // it is refused here.
        claims.expires_at?;
        claims.subject?.parse::<i64>().ok().filter(|id| *id > 0)
    }
}

/// What every API token starts with: it tells an API token from a login token (a JWT) at
/// a glance, for the server and for secret scanners.
pub const API_TOKEN_PREFIX: &str = "postd_";

/// A new API token (32 random bytes) and the hash of it the store keeps.
pub fn new_api_token() -> (String, String) {
    let random = crate::text::hex(&generate_key());
    let token = format!("{API_TOKEN_PREFIX}{random}");
    let hash = api_token_hash(&token);
    (token, hash)
}

/// SHA-256 of a token, in hex: enough for 32 random bytes (no salt, no slowness needed).
pub fn api_token_hash(token: &str) -> String {
    use sha2::Digest;
    crate::text::hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// A new random signing key (32 bytes).
pub fn generate_key() -> Vec<u8> {
    HS256Key::generate().to_bytes()
}

/// `POSTD_JWT_SECRET`, checked: long enough to be a key.
pub fn key_from_env(secret: &str) -> Result<Vec<u8>, String> {
    if secret.len() < KEY_LEN {
        return Err(format!("POSTD_JWT_SECRET must be at least {KEY_LEN} bytes"));
    }
    Ok(secret.as_bytes().to_vec())
}

/// The signing secret: `POSTD_JWT_SECRET` if given, else `postd.key` beside the database,
/// created on first start with 32 random bytes and mode 0600. A key file readable by
/// group or others is refused: whoever reads it can mint admin tokens.
pub fn load_or_create_key(key_path: &Path, from_env: Option<&str>) -> Result<Vec<u8>, String> {
    if let Some(secret) = from_env {
        return key_from_env(secret);
    }
    match std::fs::metadata(key_path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "signing key {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
                    key_path.display()
                ));
            }
            let bytes = std::fs::read(key_path)
                .map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
            if bytes.len() < KEY_LEN {
                return Err(format!(
                    "signing key {} is shorter than {KEY_LEN} bytes",
                    key_path.display()
                ));
            }
            Ok(bytes)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let bytes = generate_key();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(key_path)
                .map_err(|e| format!("cannot create {}: {e}", key_path.display()))?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
            Ok(bytes)
        }
        Err(err) => Err(format!("cannot read {}: {err}", key_path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip_and_unknown_users_never_match() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("wrong horse", Some(&hash)));
        assert!(!verify_password("correct horse", None));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn tokens_carry_the_user_and_reject_other_keys() {
        let keys = TokenKeys::new(&[7; 32], 60);
        let token = keys.issue(42).unwrap();
        assert_eq!(keys.verify(&token), Some(42));
        assert_eq!(TokenKeys::new(&[8; 32], 60).verify(&token), None);
        assert_eq!(keys.verify("not.a.token"), None);
    }
}
