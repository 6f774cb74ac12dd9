//! `/v1/models`: the routes, then every usable upstream's models, in OpenAI's list shape.

use crate::config::Config;
use crate::router;
use crate::upstreams::Upstream;
use serde_json::{json, Value};

/// Upstreams a client can reach: those with keys, and those that forward the client's own
/// key (no `AUTH_TOKEN`, no unset `keys` secret).
pub fn listed_upstreams(config: &Config) -> Vec<&Upstream> {
    config
        .upstreams
        .iter()
        .filter(|u| {
            !u.keys.is_empty()
                || u.kind.id == "demo"
                || (config.auth_token.is_none() && !u.keys_required)
        })
        .collect()
}

/// The id a client should send so the model reaches `upstream`: the plain name when
/// routing already sends it there, else `upstream/name`.
pub fn client_model_id(config: &Config, upstream: &Upstream, model: &str) -> String {
    let is_route = config
        .routes
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(model));
    let plain = !is_route
        && router::candidates(config, model, &mut || 0.0).is_ok_and(|list| {
            list.first()
                .is_some_and(|c| config.upstreams[c.upstream].name == upstream.name)
        });
    if plain {
        model.to_string()
    } else {
        format!("{}/{model}", upstream.name)
    }
}

/// The routes, then configured and upstream-listed models, upstream by upstream, without
/// duplicates.
pub fn model_list(config: &Config, fetched: &[(&Upstream, Vec<String>)]) -> Value {
    let mut seen: Vec<String> = Vec::new();
    let mut data = Vec::new();
    for route in &config.routes {
        seen.push(route.name.clone());
        data.push(json!({
            "id": route.name,
            "object": "model",
            "created": 0,
            "owned_by": "gateway",
        }));
    }
    for (upstream, listed) in fetched {
        for model in upstream.list_models.iter().chain(listed.iter()) {
            let id = client_model_id(config, upstream, model);
            if seen.contains(&id) {
                continue;
            }
            seen.push(id.clone());
            data.push(json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": upstream.kind.owned_by,
            }));
        }
    }
    json!({ "object": "list", "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Config::from_lookup(|n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())).unwrap()
    }

    fn ids(list: &Value) -> Vec<&str> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn token_mode_lists_only_upstreams_with_keys() {
        let c = config(&[("AUTH_TOKEN", "t"), ("GEMINI_API_KEY", "g")]);
        let ids: Vec<&str> = listed_upstreams(&c)
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(ids, vec!["gemini"]);
        let open = config(&[]);
        assert_eq!(listed_upstreams(&open).len(), 3);
        // An upstream whose keys secret is unset is never listed: it cannot answer.
        let c = config(&[(
            "UPSTREAMS",
            r#"[{"name":"a","kind":"openai","keys":"UNSET"},{"name":"b","kind":"openai"}]"#,
        )]);
        let ids: Vec<&str> = listed_upstreams(&c)
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(ids, vec!["b"]);
    }

    #[test]
    fn routes_come_first() {
        let c = config(&[
            (
                "UPSTREAMS",
                r#"[{"name":"ds","kind":"openai","keys":"K","models":["deepseek-*"],"list_models":["deepseek-chat","chat"]}]"#,
            ),
            ("K", "k1"),
            ("ROUTES", r#"{"chat":["ds/deepseek-chat"]}"#),
        ]);
        let ups = listed_upstreams(&c);
        let list = model_list(&c, &[(ups[0], vec!["deepseek-coder".into()])]);
        let ids = ids(&list);
        // `chat` the upstream model is reachable only with its prefix: the route has the name.
        assert_eq!(
            ids,
            vec!["chat", "deepseek-chat", "ds/chat", "deepseek-coder"]
        );
        assert_eq!(list["data"][0]["owned_by"], "gateway");
    }

    #[test]
    fn merged_list_with_prefixes_where_needed() {
        let c = config(&[
            ("GEMINI_MODELS", "gemini-2.5-pro"),
            ("DASHSCOPE_MODELS", "qwen-max,deepseek-v3"),
        ]);
        let gemini = c.upstream("gemini").unwrap();
        let dashscope = c.upstream("dashscope").unwrap();
        let openai = c.upstream("openai").unwrap();
        let list = model_list(
            &c,
            &[
                (
                    gemini,
                    vec!["gemini-2.5-pro".into(), "gemini-2.0-flash".into()],
                ),
                (dashscope, vec![]),
                (openai, vec!["gpt-4o".into(), "gemini-on-openai".into()]),
            ],
        );
        let ids = ids(&list);
        assert_eq!(
            ids,
            vec![
                "gemini-2.5-pro",
                "gemini-2.0-flash",
                "qwen-max",
                "dashscope/deepseek-v3",
                "gpt-4o",
                "openai/gemini-on-openai"
            ]
        );
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["owned_by"], "google");
        assert_eq!(list["data"][0]["object"], "model");
    }
}
