//! A one-file safetensors checkpoint cut into shards as Hugging Face cuts it, for the native
//! and the browser tests of sharded loading.

/// The names of the two shards [`shard_like_hugging_face`] writes.
pub const SHARD_NAMES: [&str; 2] = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

/// A one-file safetensors checkpoint cut in two shards as Hugging Face lays them out (the
/// embeddings and block 0 in the first, the rest in the second), with the
/// model.safetensors.index.json that lists them.
pub fn shard_like_hugging_face(whole: &[u8]) -> (String, Vec<(String, Vec<u8>)>) {
    let file = safetensors::SafeTensors::deserialize(whole).unwrap();
    let shard_of =
        |name: &str| SHARD_NAMES[usize::from(!(name.contains("embed_tokens") || name.contains("layers.0.")))];
    let mut shards = Vec::new();
    let mut weight_map = serde_json::Map::new();
    for shard in SHARD_NAMES {
        let mut part: Vec<(String, safetensors::tensor::TensorView)> =
            file.tensors().into_iter().filter(|(name, _)| shard_of(name) == shard).collect();
        part.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, _) in &part {
            weight_map.insert(name.clone(), shard.into());
        }
        shards.push((shard.to_string(), safetensors::serialize(part, None).unwrap()));
    }
    (serde_json::json!({"metadata": {}, "weight_map": weight_map}).to_string(), shards)
}
