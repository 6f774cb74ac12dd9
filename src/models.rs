//! `/v1/models`: every usable provider's models in OpenAI's list shape.

use crate::config::{Config, ProviderSettings};
use serde_json::{json, Value};

/// Providers a client can reach: those with a server key, and all of them when clients
/// bring their own keys (no `AUTH_TOKEN`).
pub fn listed_providers(config: &Config) -> Vec<&ProviderSettings> {
    config
        .providers
        .iter()
        .filter(|p| p.api_key.is_some() || config.auth_token.is_none())
        .collect()
}

/// The id a client should send so the model reaches `provider`: the plain name when
/// routing already sends it there, else `provider/name`.
pub fn client_model_id(config: &Config, provider: &ProviderSettings, model: &str) -> String {
    match config.route_model(model) {
        Ok((p, name)) if p.spec.id == provider.spec.id && name == model => model.to_string(),
        _ => format!("{}/{model}", provider.spec.id),
    }
}

/// Merges configured and upstream-listed models, provider by provider, without duplicates.
pub fn model_list(config: &Config, fetched: &[(&ProviderSettings, Vec<String>)]) -> Value {
    let mut seen: Vec<String> = Vec::new();
    let mut data = Vec::new();
    for (provider, upstream) in fetched {
        for model in provider.models.iter().chain(upstream.iter()) {
            let id = client_model_id(config, provider, model);
            if seen.contains(&id) {
                continue;
            }
            seen.push(id.clone());
            data.push(json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": provider.spec.owned_by,
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

    #[test]
    fn token_mode_lists_only_providers_with_keys() {
        let c = config(&[("AUTH_TOKEN", "t"), ("GEMINI_API_KEY", "g")]);
        let ids: Vec<&str> = listed_providers(&c).iter().map(|p| p.spec.id).collect();
        assert_eq!(ids, vec!["gemini"]);
        let open = config(&[]);
        assert_eq!(listed_providers(&open).len(), 3);
    }

    #[test]
    fn merged_list_with_prefixes_where_needed() {
        let c = config(&[
            ("GEMINI_MODELS", "gemini-2.5-pro"),
            ("DASHSCOPE_MODELS", "qwen-max,deepseek-v3"),
        ]);
        let gemini = c.provider("gemini").unwrap();
        let dashscope = c.provider("dashscope").unwrap();
        let openai = c.provider("openai").unwrap();
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
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
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
