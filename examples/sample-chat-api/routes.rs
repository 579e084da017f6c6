//! The default catalog's routes.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::store::Store;

pub fn route(
    store: &Store,
    caller: &Caller,
    method: &Method,
    path: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut data = store.0.lock().unwrap();
    let not_found = (StatusCode::NOT_FOUND, json!({"error": "not found"}));
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v1", "channels"]) => (
            StatusCode::OK,
            json!({"channels": data.channels.keys().collect::<Vec<_>>()}),
        ),
        ("GET", ["api", "v1", "channels", channel]) if data.channels.contains_key(*channel) => {
            (StatusCode::OK, json!({"id": channel}))
        }
        ("GET", ["api", "v1", "channels", channel, "messages"]) => {
            match data.channels.get(*channel) {
                Some(messages) => (StatusCode::OK, json!({"messages": messages})),
                None => not_found,
            }
        }
        ("POST", ["api", "v1", "channels", channel, "messages"]) => {
            let text = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["text"].as_str().map(String::from));
            let Some(text) = text else {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": "body needs {\"text\": ...}"}),
                );
            };
            let Some(messages) = data.channels.get_mut(*channel) else {
                return not_found;
            };
            let message = json!({"id": format!("m{}", messages.len() + 1), "user": caller.plugin_segment, "text": text});
            messages.push(message.clone());
            (StatusCode::CREATED, message)
        }
        (
            "POST",
            [
                "api",
                "v1",
                "channels",
                channel,
                "messages",
                message,
                "reactions",
            ],
        ) => (
            StatusCode::CREATED,
            json!({"channel": channel, "message": message, "by": caller.plugin_segment}),
        ),
        ("GET", ["api", "v1", "users"]) => (
            StatusCode::OK,
            json!({"users": data.users.values().collect::<Vec<_>>()}),
        ),
        ("GET", ["api", "v1", "users", user]) => match data.users.get(*user) {
            Some(user) => (StatusCode::OK, user.clone()),
            None => not_found,
        },
        ("GET", ["api", "v1", "files", file]) => match data.files.get(*file) {
            Some(content) => (StatusCode::OK, json!({"id": file, "content": content})),
            None => not_found,
        },
        ("POST", ["api", "v1", "channels", _, "files"]) => {
            let id = format!("F{}", data.files.len() + 1);
            data.files
                .insert(id.clone(), String::from_utf8_lossy(body).into_owned());
            (StatusCode::CREATED, json!({"id": id}))
        }
        (_, ["api", "v1", "kv", owner, ..]) if *owner != caller.plugin_segment => (
            StatusCode::FORBIDDEN,
            json!({"error": "a plugin may only reach its own key-value space"}),
        ),
        ("GET", ["api", "v1", "kv", owner]) => {
            let keys: Vec<_> = data
                .kv
                .keys()
                .filter(|(o, _)| o == owner)
                .map(|(_, k)| k.clone())
                .collect();
            (StatusCode::OK, json!({"keys": keys}))
        }
        ("GET", ["api", "v1", "kv", owner, key]) => {
            match data.kv.get(&(owner.to_string(), key.to_string())) {
                Some(value) => (StatusCode::OK, json!({"key": key, "value": value})),
                None => not_found,
            }
        }
        ("PUT", ["api", "v1", "kv", owner, key]) => {
            data.kv.insert(
                (owner.to_string(), key.to_string()),
                String::from_utf8_lossy(body).into_owned(),
            );
            (StatusCode::OK, json!({"key": key}))
        }
        ("DELETE", ["api", "v1", "kv", owner, key]) => {
            data.kv.remove(&(owner.to_string(), key.to_string()));
            (StatusCode::OK, json!({"key": key}))
        }
        _ => not_found,
    }
}
