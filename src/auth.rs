//! Who may call the gateway, and which key goes upstream.
//!
//! - `AUTH_TOKEN` set: clients must present it (`Authorization: Bearer`, or `X-Api-Key`);
//!   the server key is used upstream.
//! - `AUTH_TOKEN` unset, server key set: the server key is used.
//! - Neither set (public-service mode): the client's own key is forwarded.

use crate::error::GatewayError;
use sha2::{Digest, Sha256};

/// The credential a client presented: `Authorization: Bearer X`, else `X-Api-Key: X`.
pub fn client_credential(authorization: Option<&str>, x_api_key: Option<&str>) -> Option<String> {
    let from_bearer = authorization.and_then(|value| {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_string())
    });
    from_bearer
        .or_else(|| x_api_key.map(|k| k.trim().to_string()))
        .filter(|k| !k.is_empty())
}

/// With an access token configured, the client must present it.
pub fn check_access(auth_token: Option<&str>, presented: Option<&str>) -> Result<(), GatewayError> {
    let Some(token) = auth_token else {
        return Ok(());
    };
    let Some(presented) = presented else {
        return Err(GatewayError::Unauthorized {
            message: "This gateway requires an access token: send `Authorization: Bearer <token>`"
                .into(),
            code: "missing_api_key",
        });
    };
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(GatewayError::Unauthorized {
            message: "The access token is not valid for this gateway".into(),
            code: "invalid_api_key",
        });
    }
    Ok(())
}

/// The request log's dashboard and API need `ADMIN_TOKEN`: off (403) without it.
pub fn check_admin(admin_token: Option<&str>, presented: Option<&str>) -> Result<(), GatewayError> {
    let token = admin_enabled(admin_token)?;
    match presented {
        None => Err(GatewayError::Unauthorized {
            message:
                "The request log needs the admin token: send `Authorization: Bearer <ADMIN_TOKEN>`"
                    .into(),
            code: "missing_api_key",
        }),
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(GatewayError::Unauthorized {
            message: "The admin token is not valid".into(),
            code: "invalid_api_key",
        }),
    }
}

/// The admin token, or the 403 that says the dashboard is off without one.
pub fn admin_enabled(admin_token: Option<&str>) -> Result<&str, GatewayError> {
    admin_token.ok_or_else(|| GatewayError::Forbidden {
        message: "The request log dashboard and API are disabled: set the ADMIN_TOKEN secret to enable them".into(),
        code: "dashboard_disabled",
    })
}

/// Names used in messages when no key is available for a call.
#[derive(Debug, Clone, Copy)]
pub struct KeyTarget<'a> {
    pub provider: &'a str,
    pub key_var: &'a str,
    pub model: &'a str,
}

impl KeyTarget<'_> {
    fn missing_server_key(&self) -> GatewayError {
        GatewayError::Unauthorized {
            message: format!(
                "No API key is configured for provider `{}`, which serves model `{}` (set the {} secret)",
                self.provider, self.model, self.key_var
            ),
            code: "missing_server_key",
        }
    }
}

/// Decides the upstream key for a request, or refuses it.
pub fn upstream_key(
    auth_token: Option<&str>,
    server_key: Option<&str>,
    presented: Option<&str>,
    target: KeyTarget,
) -> Result<String, GatewayError> {
    if auth_token.is_some() {
        check_access(auth_token, presented)?;
        return server_key
            .map(str::to_string)
            .ok_or_else(|| target.missing_server_key());
    }
    if let Some(key) = server_key {
        return Ok(key.to_string());
    }
    presented
        .map(str::to_string)
        .ok_or_else(|| GatewayError::Unauthorized {
            message: format!(
                "Missing API key: send your `{}` key for model `{}` as `Authorization: Bearer <key>`",
                target.provider, target.model
            ),
            code: "missing_api_key",
        })
}

/// Compares without an early exit, so the time taken does not reveal how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0 && a.len() == b.len()
}

/// A short, stable fingerprint of a secret for logs and status pages: never the secret itself.
pub fn key_fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_x_api_key() {
        assert_eq!(
            client_credential(Some("Bearer sk-1"), None).as_deref(),
            Some("sk-1")
        );
        assert_eq!(
            client_credential(Some("bearer   sk-2 "), None).as_deref(),
            Some("sk-2")
        );
        assert_eq!(
            client_credential(Some("Basic abc"), Some("k")).as_deref(),
            Some("k")
        );
        assert_eq!(client_credential(None, Some("  ")), None);
        assert_eq!(client_credential(Some("Bearer "), None), None);
    }

    const T: KeyTarget = KeyTarget {
        provider: "openai",
        key_var: "OPENAI_API_KEY",
        model: "gpt-x",
    };

    #[test]
    fn token_mode() {
        assert_eq!(
            upstream_key(Some("t"), Some("server"), Some("t"), T).unwrap(),
            "server"
        );
        let missing = upstream_key(Some("t"), Some("server"), None, T).unwrap_err();
        assert_eq!(missing.status(), 401);
        let wrong = upstream_key(Some("t"), Some("server"), Some("x"), T).unwrap_err();
        assert_eq!(wrong.to_body()["error"]["code"], "invalid_api_key");
        let no_server_key = upstream_key(Some("t"), None, Some("t"), T).unwrap_err();
        assert_eq!(no_server_key.status(), 401);
        assert_eq!(
            no_server_key.to_body()["error"]["code"],
            "missing_server_key"
        );
    }

    #[test]
    fn server_key_mode_and_public_mode() {
        assert_eq!(
            upstream_key(None, Some("server"), Some("client"), T).unwrap(),
            "server"
        );
        assert_eq!(
            upstream_key(None, None, Some("client"), T).unwrap(),
            "client"
        );
        assert_eq!(upstream_key(None, None, None, T).unwrap_err().status(), 401);
    }

    #[test]
    fn errors_never_contain_keys() {
        let err =
            upstream_key(Some("secret-token"), Some("sk-server"), Some("sk-guess"), T).unwrap_err();
        let text = err.to_body().to_string();
        assert!(
            !text.contains("secret-token")
                && !text.contains("sk-server")
                && !text.contains("sk-guess")
        );
    }

    #[test]
    fn admin_token() {
        assert_eq!(check_admin(None, Some("x")).unwrap_err().status(), 403);
        assert_eq!(check_admin(Some("adm"), None).unwrap_err().status(), 401);
        assert_eq!(
            check_admin(Some("adm"), Some("nope")).unwrap_err().status(),
            401
        );
        assert!(check_admin(Some("adm"), Some("adm")).is_ok());
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
        // lengths differing by a multiple of 256 must still differ
        assert!(!constant_time_eq(&[0u8; 256], b""));
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        let a = key_fingerprint("sk-abc");
        assert_eq!(a, key_fingerprint("sk-abc"));
        assert_ne!(a, key_fingerprint("sk-abd"));
        assert!(a.starts_with("sha256:") && a.len() == 19);
        assert!(!a.contains("sk-abc"));
    }
}
