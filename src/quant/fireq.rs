//! FireQ's RoPE-aware key scaling (docs/quantizers.md §4.9), from the calibrated key statistics, so
//! an INT4 KV cache with one scale per head does not spend its grid on a few large channels:
//! - post-RoPE: per KV head, the [`POST_ROPE_TOP`] channels of largest max|k| and their RoPE
//!   partners get `σ_c = β / max|k_c|`, applied after RoPE;
//! - pre-RoPE: every other channel gets `σ_c = α / m_c`, `m_c` the max norm of its RoPE pair
//!   (the same for both members, so the scale commutes with the rotation and could be folded
//!   into W_k's rows; applying it after RoPE is the same product).
//! Queries are divided by the scale of the key channel they meet (over the GQA group), so q·k is
//! unchanged before quantization. A channel that never fired (max 0) keeps σ = 1.

use std::collections::BTreeSet;

use super::calibrate::{rope_partner, Calibration};
use crate::model::LlamaConfig;

/// The script's α and β.
pub const ALPHA: f32 = 8.0;
pub const BETA: f32 = 8.0;
/// Channels per KV head scaled after RoPE (the config default; the script uses 8 at head_dim 128).
pub const POST_ROPE_TOP: usize = 3;

/// Per layer, one scale per key channel (`kv_dim`).
pub fn key_scales(config: &LlamaConfig, calibration: &Calibration) -> Vec<Vec<f32>> {
    let hd = config.head_dim;
    calibration
        .layers
        .iter()
        .map(|layer| {
            let keys = &layer.keys;
            let mut scales = vec![1.0f32; keys.absmax.len()];
            for head in 0..config.n_kv_heads {
                let channels: Vec<usize> = (head * hd..(head + 1) * hd).collect();
                let mut by_max = channels.clone();
                by_max.sort_by(|&a, &b| keys.absmax[b].total_cmp(&keys.absmax[a]).then(a.cmp(&b)));
                let post: BTreeSet<usize> = by_max
                    .iter()
                    .take(POST_ROPE_TOP)
                    .flat_map(|&c| [c, rope_partner(c, hd, config.rope_layout)])
                    .collect();
                for c in channels {
                    let (target, max) =
                        if post.contains(&c) { (BETA, keys.absmax[c]) } else { (ALPHA, keys.pair_norm_max[c]) };
                    if max > 0.0 {
                        scales[c] = target / max;
                    }
                }
            }
            scales
        })
        .collect()
}
