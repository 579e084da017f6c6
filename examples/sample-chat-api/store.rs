//! The chat system's data, in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Data {
    pub channels: BTreeMap<String, Vec<serde_json::Value>>,
    pub users: BTreeMap<String, serde_json::Value>,
    pub files: BTreeMap<String, String>,
    /// (plugin segment, key) -> value
    pub kv: BTreeMap<(String, String), String>,
}

pub struct Store(pub Mutex<Data>);

impl Store {
    pub fn with_sample_data() -> Self {
        let mut data = Data::default();
        for channel in ["C123", "C456"] {
            data.channels.insert(
                channel.into(),
                vec![serde_json::json!({"id": "m1", "user": "U1", "text": format!("welcome to {channel}")})],
            );
        }
        data.users
            .insert("U1".into(), serde_json::json!({"id": "U1", "name": "ada"}));
        data.files.insert("F1".into(), "sample file".into());
        Self(Mutex::new(data))
    }
}
