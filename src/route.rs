//! Which handler serves a method and path.

use crate::error::GatewayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Chat,
    Embeddings,
    /// Anthropic Messages.
    Messages,
    /// `/v1/messages/count_tokens`
    CountTokens,
    /// OpenAI Responses.
    Responses,
    /// `GET /v1/responses/{id}`
    ResponseGet,
    /// `DELETE /v1/responses/{id}`
    ResponseDelete,
    Models,
    Health,
    Status,
    Page,
    PageScript,
    Stylesheet,
    Dashboard,
    DashboardScript,
    RequestList,
    /// `/api/request/{id}`
    RequestDetail,
    Stats,
    /// `GET /api/keys`
    KeyList,
    /// `POST /api/keys`
    KeyCreate,
    /// `GET /api/keys/{id}`
    KeyGet,
    /// `PATCH /api/keys/{id}`
    KeyUpdate,
    /// `DELETE /api/keys/{id}`
    KeyDelete,
    Preflight,
}

/// One path the gateway serves, with the methods it takes (OPTIONS is always accepted).
struct Endpoint {
    paths: &'static [&'static str],
    get: Option<Route>,
    post: Option<Route>,
    delete: Option<Route>,
    patch: Option<Route>,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        paths: &["/"],
        get: Some(Route::Page),
        post: Some(Route::Chat),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/v1/chat/completions", "/chat/completions", "/api/chat"],
        get: None,
        post: Some(Route::Chat),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/v1/messages", "/messages"],
        get: None,
        post: Some(Route::Messages),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/v1/messages/count_tokens", "/messages/count_tokens"],
        get: None,
        post: Some(Route::CountTokens),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/v1/responses", "/responses"],
        get: None,
        post: Some(Route::Responses),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/v1/responses/{id}"],
        get: Some(Route::ResponseGet),
        post: None,
        delete: Some(Route::ResponseDelete),
        patch: None,
    },
    Endpoint {
        paths: &["/v1/embeddings", "/embeddings"],
        get: None,
        post: Some(Route::Embeddings),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/v1/models", "/models"],
        get: Some(Route::Models),
        post: Some(Route::Models),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/health", "/healthz"],
        get: Some(Route::Health),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/api/status"],
        get: Some(Route::Status),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/app.js"],
        get: Some(Route::PageScript),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/base.css"],
        get: Some(Route::Stylesheet),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/dashboard"],
        get: Some(Route::Dashboard),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/dashboard.js"],
        get: Some(Route::DashboardScript),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/api/requests"],
        get: Some(Route::RequestList),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/api/request/{id}"],
        get: Some(Route::RequestDetail),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/api/stats"],
        get: Some(Route::Stats),
        post: None,
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/api/keys"],
        get: Some(Route::KeyList),
        post: Some(Route::KeyCreate),
        delete: None,
        patch: None,
    },
    Endpoint {
        paths: &["/api/keys/{id}"],
        get: Some(Route::KeyGet),
        post: None,
        delete: Some(Route::KeyDelete),
        patch: Some(Route::KeyUpdate),
    },
];

/// The `{id}` of `/api/keys/{id}`.
pub fn key_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/api/keys/")?.trim_end_matches('/');
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The `{id}` of `/v1/responses/{id}` (also `/responses/{id}`).
pub fn response_id(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/v1/responses/")
        .or_else(|| path.strip_prefix("/responses/"))?
        .trim_end_matches('/');
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The `{id}` of `/api/request/{id}`.
pub fn request_detail_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/api/request/")?.trim_end_matches('/');
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

pub fn route(method: &str, path: &str) -> Result<Route, GatewayError> {
    let normalized = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let normalized = if normalized.is_empty() {
        "/"
    } else {
        normalized
    };
    let normalized = if request_detail_id(normalized).is_some() {
        "/api/request/{id}"
    } else if response_id(normalized).is_some() {
        "/v1/responses/{id}"
    } else if key_id(normalized).is_some() {
        "/api/keys/{id}"
    } else {
        normalized
    };
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.paths.contains(&normalized)) else {
        return Err(GatewayError::NotFound {
            method: method.to_string(),
            path: path.to_string(),
        });
    };
    let found = match method.to_ascii_uppercase().as_str() {
        "OPTIONS" => Some(Route::Preflight),
        "GET" | "HEAD" => endpoint.get,
        "POST" => endpoint.post,
        "DELETE" => endpoint.delete,
        "PATCH" => endpoint.patch,
        _ => None,
    };
    found.ok_or_else(|| GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_string(),
        allow: if endpoint.patch.is_some() {
            "GET, PATCH, DELETE, OPTIONS"
        } else {
            match (
                endpoint.get.is_some(),
                endpoint.post.is_some(),
                endpoint.delete.is_some(),
            ) {
                (true, true, _) => "GET, POST, OPTIONS",
                (true, false, true) => "GET, DELETE, OPTIONS",
                (true, false, false) => "GET, OPTIONS",
                _ => "POST, OPTIONS",
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_paths() {
        for path in [
            "/v1/chat/completions",
            "/api/chat",
            "/",
            "/chat/completions",
            "/v1/chat/completions/",
        ] {
            assert_eq!(route("POST", path).unwrap(), Route::Chat, "{path}");
        }
    }

    #[test]
    fn embeddings_paths() {
        for path in ["/v1/embeddings", "/embeddings", "/v1/embeddings/"] {
            assert_eq!(route("POST", path).unwrap(), Route::Embeddings, "{path}");
        }
        assert_eq!(route("GET", "/v1/embeddings").unwrap_err().status(), 405);
        assert_eq!(
            route("OPTIONS", "/v1/embeddings").unwrap(),
            Route::Preflight
        );
    }

    #[test]
    fn responses_paths() {
        assert_eq!(route("POST", "/v1/responses").unwrap(), Route::Responses);
        assert_eq!(
            route("GET", "/v1/responses/resp_1").unwrap(),
            Route::ResponseGet
        );
        assert_eq!(
            route("DELETE", "/v1/responses/resp_1/").unwrap(),
            Route::ResponseDelete
        );
        assert_eq!(response_id("/v1/responses/resp_1"), Some("resp_1"));
        assert_eq!(response_id("/v1/responses/a/b"), None);
        let error = route("PUT", "/v1/responses/resp_1").unwrap_err();
        assert_eq!(error.status(), 405);
        assert!(matches!(
            error,
            GatewayError::MethodNotAllowed {
                allow: "GET, DELETE, OPTIONS",
                ..
            }
        ));
        assert_eq!(route("POST", "/v1/messages").unwrap(), Route::Messages);
        assert_eq!(
            route("POST", "/v1/messages/count_tokens").unwrap(),
            Route::CountTokens
        );
    }

    #[test]
    fn pages_and_status() {
        assert_eq!(route("GET", "/").unwrap(), Route::Page);
        assert_eq!(route("GET", "/health").unwrap(), Route::Health);
        assert_eq!(route("GET", "/api/status").unwrap(), Route::Status);
        assert_eq!(route("GET", "/v1/models").unwrap(), Route::Models);
        assert_eq!(route("POST", "/v1/models").unwrap(), Route::Models);
        assert_eq!(
            route("OPTIONS", "/v1/chat/completions").unwrap(),
            Route::Preflight
        );
    }

    #[test]
    fn log_routes() {
        assert_eq!(route("GET", "/dashboard").unwrap(), Route::Dashboard);
        assert_eq!(route("GET", "/api/requests").unwrap(), Route::RequestList);
        assert_eq!(
            route("GET", "/api/request/42").unwrap(),
            Route::RequestDetail
        );
        assert_eq!(request_detail_id("/api/request/abc/"), Some("abc"));
        assert_eq!(route("GET", "/api/request/").unwrap_err().status(), 404);
        assert_eq!(route("GET", "/api/request/a/b").unwrap_err().status(), 404);
        assert_eq!(route("POST", "/api/stats").unwrap_err().status(), 405);
    }

    #[test]
    fn key_routes() {
        assert_eq!(route("GET", "/api/keys").unwrap(), Route::KeyList);
        assert_eq!(route("POST", "/api/keys/").unwrap(), Route::KeyCreate);
        assert_eq!(route("GET", "/api/keys/key_1").unwrap(), Route::KeyGet);
        assert_eq!(route("PATCH", "/api/keys/key_1").unwrap(), Route::KeyUpdate);
        assert_eq!(
            route("DELETE", "/api/keys/key_1").unwrap(),
            Route::KeyDelete
        );
        assert_eq!(key_id("/api/keys/key_1/"), Some("key_1"));
        let error = route("POST", "/api/keys/key_1").unwrap_err();
        assert!(matches!(
            error,
            GatewayError::MethodNotAllowed {
                allow: "GET, PATCH, DELETE, OPTIONS",
                ..
            }
        ));
        assert_eq!(route("GET", "/api/keys/a/b").unwrap_err().status(), 404);
    }

    #[test]
    fn unknown_and_wrong_method() {
        assert_eq!(route("GET", "/nope").unwrap_err().status(), 404);
        let err = route("GET", "/v1/chat/completions").unwrap_err();
        assert_eq!(err.status(), 405);
        assert_eq!(route("DELETE", "/health").unwrap_err().status(), 405);
        assert_eq!(route("PUT", "/").unwrap_err().status(), 405);
    }
}
