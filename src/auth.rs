//! Who may call the gateway, and which key goes upstream.
//!
//! - `AUTH_TOKEN` set: clients must present it (`Authorization: Bearer`, or `X-Api-Key`);
//!   the upstream's key pool is used.
//! - `AUTH_TOKEN` unset, the upstream has keys: its keys are used.
//! - Neither (public-service mode): the client's own key is forwarded — never to an
//!   upstream whose `keys` secret is named but unset.

use crate::error::GatewayError;
use crate::upstreams::Upstream;
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

/// Whether a call to `upstream`, which has no pooled keys, may use the client's own key
/// (public mode), or the 401 that names what to set. `gateway_auth`: the caller presented the
/// access token or an access key (checked before), so only server keys may go upstream.
pub fn client_key_allowed(
    gateway_auth: bool,
    upstream: &Upstream,
    presented: Option<&str>,
    model: &str,
) -> Result<(), GatewayError> {
    let name = &upstream.name;
    if upstream.keys_required {
        let secret = upstream.keys_secret.as_deref().unwrap_or("its keys");
        return Err(GatewayError::Unauthorized {
            message: format!(
                "Upstream `{name}`, which serves model `{model}`, has no keys: the secret `{secret}` named by its `keys` is not set"
            ),
            code: "missing_server_key",
        });
    }
    if gateway_auth {
        let set = match &upstream.keys_secret {
            Some(secret) => format!("set the {secret} secret"),
            None => "give it a `keys` secret in UPSTREAMS".to_string(),
        };
        return Err(GatewayError::Unauthorized {
            message: format!(
                "No API key is configured for upstream `{name}`, which serves model `{model}` ({set})"
            ),
            code: "missing_server_key",
        });
    }
    match presented {
        Some(_) => Ok(()),
        None => Err(GatewayError::Unauthorized {
            message: format!(
                "Missing API key: send your `{name}` key for model `{model}` as `Authorization: Bearer <key>`"
            ),
            code: "missing_api_key",
        }),
    }
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

    fn upstream(keys_secret: Option<&str>, keys_required: bool) -> Upstream {
        let mut problems = Vec::new();
        let mut u = crate::upstreams::legacy_upstreams(&|_| None, &mut problems).remove(2);
        u.keys_secret = keys_secret.map(str::to_string);
        u.keys_required = keys_required;
        u
    }

    #[test]
    fn client_keys_only_in_public_mode() {
        let legacy = upstream(Some("OPENAI_API_KEY"), false);
        assert!(client_key_allowed(false, &legacy, Some("sk-client"), "gpt-x").is_ok());
        let none = client_key_allowed(false, &legacy, None, "gpt-x").unwrap_err();
        assert_eq!(none.to_body()["error"]["code"], "missing_api_key");
        let token = client_key_allowed(true, &legacy, Some("t"), "gpt-x").unwrap_err();
        assert_eq!(token.status(), 401);
        assert_eq!(token.to_body()["error"]["code"], "missing_server_key");
        assert!(token.to_string().contains("OPENAI_API_KEY"));
        // `keys` names a secret that is unset: never the client's key, the secret is named.
        let unset = upstream(Some("DEEPSEEK_KEYS"), true);
        let err = client_key_allowed(false, &unset, Some("sk-client"), "m").unwrap_err();
        assert_eq!(err.to_body()["error"]["code"], "missing_server_key");
        assert!(err.to_string().contains("DEEPSEEK_KEYS"));
        assert!(!err.to_body().to_string().contains("sk-client"));
    }

    #[test]
    fn token_check() {
        assert!(check_access(Some("t"), Some("t")).is_ok());
        assert!(check_access(None, None).is_ok());
        let missing = check_access(Some("t"), None).unwrap_err();
        assert_eq!(missing.status(), 401);
        let wrong = check_access(Some("secret-token"), Some("sk-guess")).unwrap_err();
        assert_eq!(wrong.to_body()["error"]["code"], "invalid_api_key");
        let text = wrong.to_body().to_string();
        assert!(!text.contains("secret-token") && !text.contains("sk-guess"));
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
