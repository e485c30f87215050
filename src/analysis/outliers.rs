//! Outlier detectors of docs/quantizers.md §3 (Systematic Outliers, massive activations, attention
//! sinks), computed exactly on the CPU over full tensors. They are the reference the GPU probes
//! are checked against, so each is a plain reduction written the way the papers state it.
//!
//! Nothing about a particular model is known here: channels, tokens, layers and heads are found
//! from the data. The pure functions take row-major tensors:
//!
//! - a residual-stream hidden state `h`: `[tokens × channels]`;
//! - a linear weight `W` as ggml stores it: `[rows × cols]`, one row per output feature, so a
//!   *column* is one input feature (for `ffn_down`, rows are residual-stream channels and
//!   columns are MLP channels);
//! - attention probabilities `P`: `[heads × queries × keys]` (queries = keys = tokens, causal).
//!
//! [`outlier_report`] runs the CPU reference forward on a prompt and gathers everything into one
//! serializable [`OutlierReport`] (the `quantscope outliers --json` shape, documented in README.md).
//!
//! Conventions, chosen so that a GPU reduction can reproduce them exactly:
//! - magnitudes are `|x|` of the f32 value; means are summed in f64 and rounded once to f32;
//! - the median is the *lower* median (the ⌈n/2⌉-th smallest value, as `torch.median` returns),
//!   so it is always an element of the tensor;
//! - rankings are by magnitude, largest first, ties broken by the lower index (token-major for
//!   entries);
//! - "exceeds a threshold" is strict (`>`), as in both papers' code; outlier keys use `≥` as the
//!   Systematic Outliers code does.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::ModelError;
pub use crate::model::massive::{Entry, MASSIVE_FLOOR, RULE_FACTOR};
use crate::model::reference::{forward, ForwardOptions};
pub use crate::model::stats::lower_median;
use crate::model::Model;

/// Key k is an attention outlier when the head-averaged attention it receives, summed over
/// queries, is at least this fraction of the sequence length (Systematic Outliers).
pub const OUTLIER_KEY_FRACTION: f64 = 0.1;
/// A head is reported as a sink head when its sink score reaches this (StreamingLLM has no
/// official threshold; §3.3 suggests 0.5).
pub const SINK_HEAD_THRESHOLD: f32 = 0.5;
/// Added to a column's mean |W| before dividing, as in the Systematic Outliers code, so that an
/// all-zero column gives a ratio of 0 rather than NaN.
pub const WEIGHT_RATIO_EPS: f64 = 1e-8;
/// How many of a weight-outlier column's largest rows are listed.
pub const ROWS_PER_COLUMN: usize = 3;
/// The linear weights of one block, by their GGUF name suffix.
pub const BLOCK_LINEARS: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

// ---------------------------------------------------------------------------------------------
// Residual-stream statistics

/// Magnitude statistics of one hidden state `[tokens × channels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationStats {
    pub tokens: usize,
    pub channels: usize,
    pub max_abs: f32,
    pub mean_abs: f32,
    /// Lower median of |h| over all entries.
    pub median_abs: f32,
    /// Per channel: max over tokens of |h|.
    pub channel_max_abs: Vec<f32>,
    /// Per channel: the first token where that max is reached.
    pub channel_argmax_token: Vec<usize>,
    /// Per token: max over channels of |h|.
    pub token_max_abs: Vec<f32>,
    /// Per token: the first channel where that max is reached.
    pub token_argmax_channel: Vec<usize>,
}

/// Statistics of `h`, a row-major `[tokens × channels]` hidden state.
///
/// Panics if `h` is empty or not a whole number of rows of `channels` (a caller's bug).
pub fn activation_stats(h: &[f32], channels: usize) -> ActivationStats {
    assert!(channels > 0 && !h.is_empty() && h.len() % channels == 0, "h must be [tokens × {channels}]");
    let tokens = h.len() / channels;
    let mut channel_max_abs = vec![0.0f32; channels];
    let mut channel_argmax_token = vec![0usize; channels];
    let mut token_max_abs = vec![0.0f32; tokens];
    let mut token_argmax_channel = vec![0usize; tokens];
    let mut sum = 0.0f64;
    for (t, row) in h.chunks_exact(channels).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            let a = x.abs();
            sum += a as f64;
            // Strict `>`: the first token/channel reaching the max keeps it.
            if a > channel_max_abs[c] {
                channel_max_abs[c] = a;
                channel_argmax_token[c] = t;
            }
            if a > token_max_abs[t] {
                token_max_abs[t] = a;
                token_argmax_channel[t] = c;
            }
        }
    }
    ActivationStats {
        tokens,
        channels,
        max_abs: token_max_abs.iter().copied().fold(0.0, f32::max),
        mean_abs: (sum / h.len() as f64) as f32,
        median_abs: lower_median(h.iter().map(|x| x.abs()).collect()),
        channel_max_abs,
        channel_argmax_token,
        token_max_abs,
        token_argmax_channel,
    }
}

/// Indices of the `k` values of largest magnitude, largest first; ties go to the lower index.
pub fn top_by_magnitude(values: &[f32], k: usize) -> Vec<usize> {
    let order = |a: &usize, b: &usize| values[*b].abs().total_cmp(&values[*a].abs()).then(a.cmp(b));
    let mut indices: Vec<usize> = (0..values.len()).collect();
    if k < indices.len() {
        indices.select_nth_unstable_by(k, order);
        indices.truncate(k);
    }
    indices.sort_by(order);
    indices
}

/// The `k` entries of `h` of largest magnitude (ties: token-major order).
pub fn top_entries(h: &[f32], channels: usize, k: usize) -> Vec<Entry> {
    top_by_magnitude(h, k)
        .into_iter()
        .map(|i| Entry { token: i / channels, channel: i % channels, value: h[i] })
        .collect()
}

/// A channel ranked by its max |h| over tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChannelMax {
    pub channel: usize,
    pub max_abs: f32,
    /// The token where that max is reached (the first one on ties).
    pub token: usize,
}

/// The `k` channels with the largest max |h| over tokens (§3.1's "outlier channels", top-2 there).
pub fn top_channels(stats: &ActivationStats, k: usize) -> Vec<ChannelMax> {
    top_by_magnitude(&stats.channel_max_abs, k)
        .into_iter()
        .map(|c| ChannelMax { channel: c, max_abs: stats.channel_max_abs[c], token: stats.channel_argmax_token[c] })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Activation-outlier rules

/// Which rule decides that an activation is an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierRule {
    /// Systematic Outliers (§3.1): `|h| > 1000 · mean|h|`, the mean over every entry of the layer.
    Systematic,
    /// Massive activations (§3.2): `|h| > 100` and `|h| > 1000 · median|h|`.
    Massive,
}

impl OutlierRule {
    /// Every rule, as a menu lists them.
    pub const ALL: [OutlierRule; 2] = [OutlierRule::Systematic, OutlierRule::Massive];

    /// The magnitude an activation must strictly exceed to be an outlier in a layer with `stats`.
    pub fn threshold(self, stats: &ActivationStats) -> f32 {
        match self {
            OutlierRule::Systematic => RULE_FACTOR * stats.mean_abs,
            OutlierRule::Massive => (RULE_FACTOR * stats.median_abs).max(MASSIVE_FLOOR),
        }
    }

    /// The rule as a formula, for people.
    pub fn describe(self) -> &'static str {
        match self {
            OutlierRule::Systematic => "|h| > 1000·mean|h|",
            OutlierRule::Massive => "|h| > max(100, 1000·median|h|)",
        }
    }
}

impl fmt::Display for OutlierRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutlierRule::Systematic => "systematic",
            OutlierRule::Massive => "massive",
        })
    }
}

impl FromStr for OutlierRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "systematic" => Ok(OutlierRule::Systematic),
            "massive" => Ok(OutlierRule::Massive),
            _ => Err(format!("unknown outlier rule {s:?} (systematic or massive)")),
        }
    }
}

/// Tokens holding at least one activation above `threshold`, in token order. Under the
/// systematic rule this is exactly the paper's `max_d |h[t,d]| > 1000·mean|h|`.
pub fn outlier_tokens(stats: &ActivationStats, threshold: f32) -> Vec<usize> {
    (0..stats.tokens).filter(|&t| stats.token_max_abs[t] > threshold).collect()
}

/// Channels holding at least one activation above `threshold`, in channel order.
pub fn outlier_channels(stats: &ActivationStats, threshold: f32) -> Vec<usize> {
    (0..stats.channels).filter(|&c| stats.channel_max_abs[c] > threshold).collect()
}

/// Every activation above `threshold`, in token-major order.
pub fn outlier_entries(h: &[f32], channels: usize, threshold: f32) -> Vec<Entry> {
    h.iter()
        .enumerate()
        .filter(|(_, x)| x.abs() > threshold)
        .map(|(i, &value)| Entry { token: i / channels, channel: i % channels, value })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Token categories

/// The token classes of the Systematic Outliers analysis (§3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCategory {
    /// Position 0, whatever its text.
    Initial,
    /// Punctuation and the newline.
    StrongDelimiter,
    /// Frequent function words, the digits 1–9, and whitespace-only tokens.
    WeakSemantic,
    Other,
}

impl TokenCategory {
    /// The category as the JSON spells it.
    pub fn name(self) -> &'static str {
        match self {
            TokenCategory::Initial => "initial",
            TokenCategory::StrongDelimiter => "strong_delimiter",
            TokenCategory::WeakSemantic => "weak_semantic",
            TokenCategory::Other => "other",
        }
    }
}

/// The paper's strong delimiters, compared with the token's text trimmed of whitespace.
const STRONG_DELIMITERS: &[&str] = &[
    ".", ",", ";", ":", "!", "?", "-", "--", "---", "'", "\"", "(", ")", "[", "]", "{", "}", "/", "\\", "|", "*", "&",
    "^", "%", "$", "#", "@", "~", "`",
];

/// The paper's weak-semantic tokens, compared with the trimmed text in lower case.
const WEAK_SEMANTIC: &[&str] = &[
    "and", "from", "of", "the", "a", "an", "in", "on", "at", "for", "with", "is", "was", "are", "were", "to", "by",
    "as", "that", "this", "it", "but", "or", "if", "not", "1", "2", "3", "4", "5", "6", "7", "8", "9",
];

/// The category of the token at `position` whose decoded text is `text` (e.g. `" the"`).
///
/// As in the paper's code the text is trimmed of surrounding whitespace first, delimiters are
/// matched exactly and weak-semantic words case-insensitively. One deliberate difference: the
/// paper lists the newline byte token (`<0x0A>`) as a strong delimiter, but its code compares
/// the *decoded and stripped* text, which for a newline is empty, so newlines landed in
/// "weak semantic" with the empty string. Here a whitespace-only token containing a newline is a
/// strong delimiter, as the paper's list intends; other whitespace-only tokens are weak semantic.
pub fn token_category(position: usize, text: &str) -> TokenCategory {
    if position == 0 {
        return TokenCategory::Initial;
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return if text.contains('\n') { TokenCategory::StrongDelimiter } else { TokenCategory::WeakSemantic };
    }
    if STRONG_DELIMITERS.contains(&trimmed) {
        TokenCategory::StrongDelimiter
    } else if WEAK_SEMANTIC.contains(&trimmed.to_lowercase().as_str()) {
        TokenCategory::WeakSemantic
    } else {
        TokenCategory::Other
    }
}

// ---------------------------------------------------------------------------------------------
// Weight outliers

/// One weight entry of a column: its row (output feature) and signed value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WeightEntry {
    pub row: usize,
    pub value: f32,
}

/// A column (input feature) of a weight, ranked by `ratio = max_i |W[i,j]| / (mean_i |W[i,j]| + ε)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightColumn {
    pub column: usize,
    pub ratio: f32,
    pub max_abs: f32,
    pub mean_abs: f32,
    /// The rows carrying the column's largest magnitudes, largest first.
    pub rows: Vec<WeightEntry>,
}

/// Per-column max |W| and mean |W| of a row-major `[rows × cols]` weight.
pub fn column_max_mean(w: &[f32], cols: usize) -> (Vec<f32>, Vec<f32>) {
    assert!(cols > 0 && !w.is_empty() && w.len() % cols == 0, "W must be [rows × {cols}]");
    let rows = w.len() / cols;
    let mut max = vec![0.0f32; cols];
    let mut sum = vec![0.0f64; cols];
    for row in w.chunks_exact(cols) {
        for (j, &x) in row.iter().enumerate() {
            max[j] = max[j].max(x.abs());
            sum[j] += x.abs() as f64;
        }
    }
    (max, sum.into_iter().map(|s| (s / rows as f64) as f32).collect())
}

/// `r_j = max_i |W[i,j]| / (mean_i |W[i,j]| + 1e-8)` for every column j (§3.1), in f64, rounded once.
pub fn column_ratios(w: &[f32], cols: usize) -> Vec<f32> {
    let (max, mean) = column_max_mean(w, cols);
    ratios(&max, &mean)
}

fn ratios(max: &[f32], mean: &[f32]) -> Vec<f32> {
    max.iter().zip(mean).map(|(&m, &a)| (m as f64 / (a as f64 + WEIGHT_RATIO_EPS)) as f32).collect()
}

/// Summary of one weight's column outliers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightOutliers {
    pub rows: usize,
    pub cols: usize,
    pub max_ratio: f32,
    /// Lower median of the column ratios.
    pub median_ratio: f32,
    /// The `k` columns of largest ratio.
    pub top_columns: Vec<WeightColumn>,
}

/// Column outliers of a row-major `[rows × cols]` weight: the `k` columns of largest max/mean
/// ratio, each with its [`ROWS_PER_COLUMN`] largest rows.
pub fn weight_outliers(w: &[f32], cols: usize, k: usize) -> WeightOutliers {
    let (max, mean) = column_max_mean(w, cols);
    let ratios = ratios(&max, &mean);
    let top_columns = top_by_magnitude(&ratios, k)
        .into_iter()
        .map(|j| {
            let column: Vec<f32> = w.chunks_exact(cols).map(|row| row[j]).collect();
            let rows = top_by_magnitude(&column, ROWS_PER_COLUMN)
                .into_iter()
                .map(|i| WeightEntry { row: i, value: column[i] });
            WeightColumn { column: j, ratio: ratios[j], max_abs: max[j], mean_abs: mean[j], rows: rows.collect() }
        })
        .collect();
    WeightOutliers {
        rows: w.len() / cols,
        cols,
        max_ratio: ratios.iter().copied().fold(0.0, f32::max),
        median_ratio: lower_median(ratios),
        top_columns,
    }
}

// ---------------------------------------------------------------------------------------------
// Attention outliers

/// Per head, the mean attention that queries 1..T give to key 0 (StreamingLLM's sink, §3.3).
/// `probs` is `[heads × tokens × tokens]`. Empty when `tokens < 2`: no query ≥ 1 exists.
pub fn sink_scores(probs: &[f32], heads: usize, tokens: usize) -> Vec<f32> {
    assert_eq!(probs.len(), heads * tokens * tokens, "P must be [heads × tokens × tokens]");
    if tokens < 2 {
        return Vec::new();
    }
    (0..heads)
        .map(|h| {
            let to_key0: f64 = (1..tokens).map(|q| probs[(h * tokens + q) * tokens] as f64).sum();
            (to_key0 / (tokens - 1) as f64) as f32
        })
        .collect()
}

/// `c_k = Σ_q mean_h P[h,q,k]`: the head-averaged attention key k receives, summed over queries.
/// The c_k sum to T (every query row sums to 1).
pub fn key_attention(probs: &[f32], heads: usize, tokens: usize) -> Vec<f32> {
    assert_eq!(probs.len(), heads * tokens * tokens, "P must be [heads × tokens × tokens]");
    let mut c = vec![0.0f64; tokens];
    for row in probs.chunks_exact(tokens) {
        for (k, &p) in row.iter().enumerate() {
            c[k] += p as f64;
        }
    }
    c.into_iter().map(|s| (s / heads as f64) as f32).collect()
}

/// Keys with `c_k ≥ 0.1·T` (Systematic Outliers' attention-outlier rule), in key order.
pub fn outlier_keys(key_attention: &[f32]) -> Vec<usize> {
    let bar = OUTLIER_KEY_FRACTION * key_attention.len() as f64;
    (0..key_attention.len()).filter(|&k| key_attention[k] as f64 >= bar).collect()
}

/// Heads whose sink score reaches [`SINK_HEAD_THRESHOLD`].
pub fn sink_heads(sink_scores: &[f32]) -> Vec<usize> {
    (0..sink_scores.len()).filter(|&h| sink_scores[h] >= SINK_HEAD_THRESHOLD).collect()
}

// ---------------------------------------------------------------------------------------------
// The causal chain: down-projection weight → residual-stream outlier → attention on its token

/// Where an outlier channel first shows up in the residual stream, and on which tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelAppearance {
    pub channel: usize,
    /// Index of the first hidden state (0 = embeddings, L + 1 = after block L) where the channel
    /// holds an activation above that hidden state's threshold.
    pub first_hidden_state: usize,
    /// Every hidden state where it does, in order.
    pub hidden_states: Vec<usize>,
    /// Its outlier activations in the first hidden state, largest first: the tokens carrying it.
    pub carriers: Vec<Entry>,
}

/// For every channel that is an outlier in some hidden state (each with its own threshold),
/// where it first appears. Ordered by first appearance, then by the largest carried magnitude.
pub fn channel_appearances(hidden: &[&[f32]], channels: usize, thresholds: &[f32]) -> Vec<ChannelAppearance> {
    assert_eq!(hidden.len(), thresholds.len(), "one threshold per hidden state");
    let mut found: Vec<ChannelAppearance> = Vec::new();
    for (index, (h, &threshold)) in hidden.iter().zip(thresholds).enumerate() {
        for e in outlier_entries(h, channels, threshold) {
            match found.iter_mut().find(|a| a.channel == e.channel) {
                Some(a) if a.first_hidden_state == index => a.carriers.push(e),
                Some(a) => {
                    if a.hidden_states.last() != Some(&index) {
                        a.hidden_states.push(index);
                    }
                }
                None => found.push(ChannelAppearance {
                    channel: e.channel,
                    first_hidden_state: index,
                    hidden_states: vec![index],
                    carriers: vec![e],
                }),
            }
        }
    }
    let peak = |a: &ChannelAppearance| a.carriers.iter().map(|e| e.value.abs()).fold(0.0, f32::max);
    for a in &mut found {
        a.carriers.sort_by(|x, y| y.value.abs().total_cmp(&x.value.abs()).then(x.token.cmp(&y.token)));
    }
    found.sort_by(|a, b| a.first_hidden_state.cmp(&b.first_hidden_state).then(peak(b).total_cmp(&peak(a))));
    found
}

/// How the down projection of the block that first shows a channel writes it. The down
/// projection's output adds straight into the residual stream, so output row `channel` of
/// `ffn_down` is the only way that block's MLP can write the channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownProjection {
    pub tensor: String,
    /// = the channel: the output row of `ffn_down` that writes it.
    pub row: usize,
    /// The input (MLP) column with the largest |W| in that row, and that weight.
    pub dominant_column: usize,
    pub weight: f32,
    /// `max_j |W[row,j]| / (mean_j |W[row,j]| + ε)`: how much that one weight stands out in its row.
    pub row_ratio: f32,
    /// The dominant column's own ratio over its rows (the §3.1 weight-outlier score) and its rank
    /// among all columns of the tensor by that ratio (0 = the tensor's top weight-outlier column).
    pub column_ratio: f32,
    pub column_rank: usize,
}

/// Row `channel` of a row-major `[rows × cols]` down projection, summarized as in [`DownProjection`].
pub fn down_projection(tensor: &str, w: &[f32], cols: usize, channel: usize) -> DownProjection {
    let row = &w[channel * cols..(channel + 1) * cols];
    let dominant_column = top_by_magnitude(row, 1)[0];
    let row_mean: f64 = row.iter().map(|x| x.abs() as f64).sum::<f64>() / cols as f64;
    let ratios = column_ratios(w, cols);
    let column_ratio = ratios[dominant_column];
    // Rank = how many columns come before it in the ratio ranking (same tie rule).
    let column_rank =
        (0..cols).filter(|&j| ratios[j] > column_ratio || (ratios[j] == column_ratio && j < dominant_column)).count();
    DownProjection {
        tensor: tensor.to_string(),
        row: channel,
        dominant_column,
        weight: row[dominant_column],
        row_ratio: (row[dominant_column].abs() as f64 / (row_mean + WEIGHT_RATIO_EPS)) as f32,
        column_ratio,
        column_rank,
    }
}

/// The attention that one block's queries pay to a set of carrier tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CarrierAttention {
    pub block: usize,
    /// `Σ_{k ∈ carriers} c_k / T`: the share of all (head-averaged) attention landing on them.
    pub share: f32,
    /// Mean over heads of the sink score (attention to key 0).
    pub mean_sink_score: f32,
}

/// [`CarrierAttention`] of one block from its key attention `c_k` and sink scores.
pub fn carrier_attention(
    block: usize,
    key_attention: &[f32],
    sink_scores: &[f32],
    carriers: &[usize],
) -> CarrierAttention {
    let on_carriers: f64 = carriers.iter().map(|&k| key_attention[k] as f64).sum();
    let mean_sink = if sink_scores.is_empty() {
        0.0
    } else {
        sink_scores.iter().map(|&s| s as f64).sum::<f64>() / sink_scores.len() as f64
    };
    CarrierAttention {
        block,
        share: (on_carriers / key_attention.len() as f64) as f32,
        mean_sink_score: mean_sink as f32,
    }
}

// ---------------------------------------------------------------------------------------------
// The report of one prompt

/// A prompt token with its text and category.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub index: usize,
    pub id: u32,
    pub text: String,
    pub category: TokenCategory,
}

/// A token holding an outlier activation.
#[derive(Debug, Clone, Serialize)]
pub struct OutlierToken {
    pub token: usize,
    pub text: String,
    pub category: TokenCategory,
    /// Its largest |h| and the channel holding it.
    pub max_abs: f32,
    pub channel: usize,
}

/// Statistics and outliers of one hidden state.
#[derive(Debug, Clone, Serialize)]
pub struct HiddenStateReport {
    /// 0 = the embeddings, L + 1 = the residual stream after block L.
    pub index: usize,
    /// The block that produced it (None for the embeddings).
    pub block: Option<usize>,
    pub max_abs: f32,
    pub mean_abs: f32,
    pub median_abs: f32,
    /// The rule's threshold in this hidden state.
    pub threshold: f32,
    pub top_entries: Vec<Entry>,
    pub top_channels: Vec<ChannelMax>,
    /// Per token, max |h| over channels.
    pub token_max_abs: Vec<f32>,
    pub outlier_tokens: Vec<OutlierToken>,
    pub outlier_channels: Vec<usize>,
}

/// Column outliers of one linear weight.
#[derive(Debug, Clone, Serialize)]
pub struct WeightReport {
    pub tensor: String,
    pub block: usize,
    /// The GGUF suffix: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down.
    pub kind: String,
    #[serde(flatten)]
    pub outliers: WeightOutliers,
}

/// Attention statistics of one block.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionReport {
    pub block: usize,
    /// Per head (empty for a one-token prompt).
    pub sink_scores: Vec<f32>,
    pub sink_heads: Vec<usize>,
    /// Per key, `c_k`.
    pub key_attention: Vec<f32>,
    pub median_key_attention: f32,
    pub outlier_keys: Vec<usize>,
}

/// One link of the causal chain: an outlier channel, where it appears, what writes it and the
/// attention its carrier tokens receive afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct ChainLink {
    #[serde(flatten)]
    pub appearance: ChannelAppearance,
    /// The block whose output first shows it (None if the embeddings already do).
    pub first_block: Option<usize>,
    /// That block's down projection, row = the channel (None for the embeddings).
    pub down_projection: Option<DownProjection>,
    /// For every later block (which reads the outlier in its input): attention on the carriers.
    pub attention: Vec<CarrierAttention>,
}

/// Everything `quantscope outliers` reports for one prompt.
#[derive(Debug, Clone, Serialize)]
pub struct OutlierReport {
    pub model: String,
    pub prompt: String,
    pub rule: OutlierRule,
    pub top_k: usize,
    pub tokens: Vec<TokenInfo>,
    /// `n_layers + 1` entries: the embeddings, then after each block.
    pub hidden_states: Vec<HiddenStateReport>,
    /// Per block, per linear weight ([`BLOCK_LINEARS`] order).
    pub weights: Vec<WeightReport>,
    pub attention: Vec<AttentionReport>,
    pub chain: Vec<ChainLink>,
}

/// Runs the CPU reference forward on `prompt` (keeping every hidden state and attention matrix;
/// memory grows with tokens² · heads · layers) and reports the outliers under `rule`, with
/// `top_k` entries, channels and weight columns per layer.
pub fn outlier_report(
    model: &Model,
    prompt: &str,
    rule: OutlierRule,
    top_k: usize,
) -> Result<OutlierReport, ModelError> {
    let c = &model.config;
    let ids = model.tokenizer.encode(prompt)?;
    let out = forward(model, &ids, ForwardOptions { all_logits: false, hidden_states: true, attention_probs: true })?;
    let n = ids.len();
    let tokens: Vec<TokenInfo> = ids
        .iter()
        .enumerate()
        .map(|(index, &id)| {
            let text = model.tokenizer.token_text(id);
            TokenInfo { index, id, category: token_category(index, &text), text }
        })
        .collect();

    let mut thresholds = Vec::with_capacity(out.hidden_states.len());
    let mut hidden_states = Vec::with_capacity(out.hidden_states.len());
    for (index, h) in out.hidden_states.iter().enumerate() {
        let stats = activation_stats(h, c.d_model);
        let threshold = rule.threshold(&stats);
        thresholds.push(threshold);
        let outlier_tokens = outlier_tokens(&stats, threshold)
            .into_iter()
            .map(|t| OutlierToken {
                token: t,
                text: tokens[t].text.clone(),
                category: tokens[t].category,
                max_abs: stats.token_max_abs[t],
                channel: stats.token_argmax_channel[t],
            })
            .collect();
        hidden_states.push(HiddenStateReport {
            index,
            block: index.checked_sub(1),
            max_abs: stats.max_abs,
            mean_abs: stats.mean_abs,
            median_abs: stats.median_abs,
            threshold,
            top_entries: top_entries(h, c.d_model, top_k),
            top_channels: top_channels(&stats, top_k),
            outlier_tokens,
            outlier_channels: outlier_channels(&stats, threshold),
            token_max_abs: stats.token_max_abs,
        });
    }

    let attention: Vec<AttentionReport> = out
        .attention_probs
        .iter()
        .enumerate()
        .map(|(block, p)| {
            let sink_scores = sink_scores(p, c.n_heads, n);
            let key_attention = key_attention(p, c.n_heads, n);
            AttentionReport {
                block,
                sink_heads: sink_heads(&sink_scores),
                outlier_keys: outlier_keys(&key_attention),
                median_key_attention: lower_median(key_attention.clone()),
                sink_scores,
                key_attention,
            }
        })
        .collect();

    // One dequantized weight at a time; the down projections that write outlier channels are
    // summarized while they are at hand.
    let hidden: Vec<&[f32]> = out.hidden_states.iter().map(Vec::as_slice).collect();
    let appearances = channel_appearances(&hidden, c.d_model, &thresholds);
    let mut links: Vec<ChainLink> = appearances
        .into_iter()
        .map(|a| {
            let first_block = a.first_hidden_state.checked_sub(1);
            let carriers: Vec<usize> = a.carriers.iter().map(|e| e.token).collect();
            let after = first_block.map_or(0, |b| b + 1);
            let attention = attention[after.min(attention.len())..]
                .iter()
                .map(|r| carrier_attention(r.block, &r.key_attention, &r.sink_scores, &carriers))
                .collect();
            ChainLink { appearance: a, first_block, down_projection: None, attention }
        })
        .collect();
    let mut weights = Vec::with_capacity(c.n_layers * BLOCK_LINEARS.len());
    for block in 0..c.n_layers {
        for kind in BLOCK_LINEARS.into_iter().filter(|kind| c.has_linear(kind)) {
            let name = format!("blk.{block}.{kind}.weight");
            let tensor = model.tensor(&name)?;
            let w = model.weights.dequantize(tensor)?;
            let cols = tensor.row_len();
            if kind == "ffn_down" {
                for link in links.iter_mut().filter(|l| l.first_block == Some(block)) {
                    link.down_projection = Some(down_projection(&name, &w, cols, link.appearance.channel));
                }
            }
            weights.push(WeightReport {
                tensor: name,
                block,
                kind: kind.to_string(),
                outliers: weight_outliers(&w, cols, top_k),
            });
        }
    }

    Ok(OutlierReport {
        model: model.source.clone(),
        prompt: prompt.to_string(),
        rule,
        top_k,
        tokens,
        hidden_states,
        weights,
        attention,
        chain: links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_in_the_menu_parses_from_its_name() {
        for rule in OutlierRule::ALL {
            assert_eq!(rule.to_string().parse::<OutlierRule>(), Ok(rule));
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.to_string());
        }
    }

    /// `[tokens × channels]` zeros with the given (token, channel, value) entries set.
    fn tensor(tokens: usize, channels: usize, set: &[(usize, usize, f32)]) -> Vec<f32> {
        let mut h = vec![0.0f32; tokens * channels];
        for &(t, c, v) in set {
            h[t * channels + c] = v;
        }
        h
    }

    /// A small deterministic pseudo-random sequence in [-1, 1).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn lower_median_is_exact_and_an_element() {
        assert_eq!(lower_median(vec![5.0]), 5.0);
        assert_eq!(lower_median(vec![4.0, 7.0, 1.0]), 4.0);
        // Even count: the lower of the two middle values (torch.median), not their mean.
        assert_eq!(lower_median(vec![3.0, 1.0, 2.0, 5.0]), 2.0);
        for (n, seed) in [(1usize, 1u64), (2, 2), (999, 3), (1000, 4), (6912, 5)] {
            let values: Vec<f32> = noise(n, seed).iter().map(|x| x.abs()).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(lower_median(values), sorted[(n - 1) / 2], "n = {n}");
        }
        let stats = activation_stats(&[-3.0, 1.0, -2.0, 5.0], 2);
        assert_eq!(stats.median_abs, 2.0);
        assert_eq!(stats.mean_abs, 2.75);
        assert_eq!(stats.max_abs, 5.0);
    }

    #[test]
    fn stats_per_channel_and_per_token_match_a_direct_scan() {
        let (tokens, channels) = (7, 13);
        let h = noise(tokens * channels, 11);
        let s = activation_stats(&h, channels);
        for c in 0..channels {
            let column: Vec<f32> = (0..tokens).map(|t| h[t * channels + c].abs()).collect();
            let max = column.iter().copied().fold(0.0, f32::max);
            assert_eq!(s.channel_max_abs[c], max);
            assert_eq!(column[s.channel_argmax_token[c]], max);
        }
        for t in 0..tokens {
            let row = &h[t * channels..(t + 1) * channels];
            let max = row.iter().map(|x| x.abs()).fold(0.0, f32::max);
            assert_eq!(s.token_max_abs[t], max);
            assert_eq!(row[s.token_argmax_channel[t]].abs(), max);
        }
        let mut all: Vec<(f32, usize)> = h.iter().enumerate().map(|(i, x)| (x.abs(), i)).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let top = top_entries(&h, channels, 5);
        for (e, &(_, i)) in top.iter().zip(&all) {
            assert_eq!((e.token, e.channel, e.value), (i / channels, i % channels, h[i]));
        }
        assert_eq!(top_entries(&h, channels, 0), vec![]);
        assert_eq!(top_entries(&h, channels, 1000).len(), tokens * channels);
    }

    #[test]
    fn ties_rank_by_lower_index() {
        let h = tensor(2, 3, &[(0, 2, -4.0), (1, 0, 4.0), (0, 1, 4.0)]);
        let top = top_entries(&h, 3, 3);
        let at: Vec<(usize, usize)> = top.iter().map(|e| (e.token, e.channel)).collect();
        assert_eq!(at, vec![(0, 1), (0, 2), (1, 0)]);
    }

    #[test]
    fn a_planted_outlier_is_found_at_its_token_and_channel() {
        let (tokens, channels) = (16, 256);
        let mut h: Vec<f32> = noise(tokens * channels, 7);
        h[5 * channels + 77] = -9000.0;
        let s = activation_stats(&h, channels);
        for rule in [OutlierRule::Systematic, OutlierRule::Massive] {
            let threshold = rule.threshold(&s);
            assert_eq!(outlier_tokens(&s, threshold), vec![5], "{rule}");
            assert_eq!(outlier_channels(&s, threshold), vec![77], "{rule}");
            assert_eq!(outlier_entries(&h, channels, threshold), vec![Entry { token: 5, channel: 77, value: -9000.0 }]);
        }
        assert_eq!(top_entries(&h, channels, 1), vec![Entry { token: 5, channel: 77, value: -9000.0 }]);
        assert_eq!(top_channels(&s, 1), vec![ChannelMax { channel: 77, max_abs: 9000.0, token: 5 }]);
    }

    #[test]
    fn systematic_rule_is_strict_at_1000_times_the_mean() {
        // 3 × 1024 entries summing to 3072 in magnitude: mean |h| = 1 exactly, threshold = 1000.
        let h = tensor(3, 1024, &[(0, 5, 1000.0), (1, 7, 1001.0), (2, 9, -1071.0)]);
        let s = activation_stats(&h, 1024);
        assert_eq!(s.mean_abs, 1.0);
        let threshold = OutlierRule::Systematic.threshold(&s);
        assert_eq!(threshold, 1000.0);
        // Token 0 sits exactly on the threshold (not an outlier); tokens 1 and 2 are above it.
        assert_eq!(outlier_tokens(&s, threshold), vec![1, 2]);
        assert_eq!(outlier_channels(&s, threshold), vec![7, 9]);
    }

    #[test]
    fn massive_rule_needs_both_1000_times_the_median_and_100() {
        // Median 0.25 → threshold 1000 · 0.25 = 250 (above the floor of 100).
        let mut h = vec![0.25f32; 4 * 64];
        h[3] = 250.0;
        h[64 + 4] = -250.5;
        let s = activation_stats(&h, 64);
        assert_eq!(s.median_abs, 0.25);
        let threshold = OutlierRule::Massive.threshold(&s);
        assert_eq!(threshold, 250.0);
        assert_eq!(outlier_tokens(&s, threshold), vec![1]);
        // Median 0.0625 → 1000 · median = 62.5, so the floor of 100 decides.
        let mut h = vec![0.0625f32; 4 * 64];
        h[3] = 100.0;
        h[2 * 64 + 4] = 100.5;
        let s = activation_stats(&h, 64);
        let threshold = OutlierRule::Massive.threshold(&s);
        assert_eq!(threshold, 100.0);
        assert_eq!(outlier_tokens(&s, threshold), vec![2]);
        // The same tensor under the systematic rule: mean ≈ 0.84, threshold ≈ 840: nothing.
        assert!(outlier_tokens(&s, OutlierRule::Systematic.threshold(&s)).is_empty());
    }

    #[test]
    fn rules_parse_and_print() {
        for rule in [OutlierRule::Systematic, OutlierRule::Massive] {
            assert_eq!(rule.to_string().parse::<OutlierRule>(), Ok(rule));
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.to_string());
        }
        assert!("median".parse::<OutlierRule>().is_err());
        for c in
            [TokenCategory::Initial, TokenCategory::StrongDelimiter, TokenCategory::WeakSemantic, TokenCategory::Other]
        {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
    }

    #[test]
    fn token_categories_follow_the_papers_lists() {
        use TokenCategory::*;
        assert_eq!(token_category(0, " ."), Initial);
        assert_eq!(token_category(0, "Paris"), Initial);
        for text in [".", " .", ",", "\n", "\n\n", " (", "---", "\\"] {
            assert_eq!(token_category(3, text), StrongDelimiter, "{text:?}");
        }
        for text in [" the", "The", " IS", "7", " ", "", " and"] {
            assert_eq!(token_category(3, text), WeakSemantic, "{text:?}");
        }
        for text in [" Paris", "0", " capital", ".\"", " theory"] {
            assert_eq!(token_category(3, text), Other, "{text:?}");
        }
    }

    #[test]
    fn weight_column_outliers_find_the_planted_column_and_rows() {
        // 8 rows × 6 columns of ±1; column 4 carries 50 in row 2 and -30 in row 6.
        let (rows, cols) = (8, 6);
        let mut w: Vec<f32> = (0..rows * cols).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
        w[2 * cols + 4] = 50.0;
        w[6 * cols + 4] = -30.0;
        let ratios = column_ratios(&w, cols);
        assert!(ratios.iter().enumerate().all(|(j, &r)| if j == 4 { r > 1.0 } else { (r - 1.0).abs() < 1e-6 }));
        // Column 4: max 50, mean (50 + 30 + 6) / 8 = 10.75.
        let r = weight_outliers(&w, cols, 2);
        assert_eq!((r.rows, r.cols), (rows, cols));
        let top = &r.top_columns[0];
        assert_eq!((top.column, top.max_abs, top.mean_abs), (4, 50.0, 10.75));
        assert!((top.ratio as f64 - 50.0 / 10.75).abs() < 1e-5);
        assert_eq!(r.max_ratio, top.ratio);
        assert_eq!(top.rows[0], WeightEntry { row: 2, value: 50.0 });
        assert_eq!(top.rows[1], WeightEntry { row: 6, value: -30.0 });
        assert_eq!(top.rows.len(), ROWS_PER_COLUMN);
        assert_eq!(r.top_columns[1].column, 0, "the rest tie at ratio 1; the lowest index wins");
        assert!((r.median_ratio - 1.0).abs() < 1e-6);

        let d = down_projection("w", &w, cols, 2);
        assert_eq!((d.row, d.dominant_column, d.weight, d.column_rank), (2, 4, 50.0, 0));
        // Row 2: |W| = 1, 1, 1, 1, 50, 1 → mean 55/6.
        assert!((d.row_ratio as f64 - 50.0 / (55.0 / 6.0)).abs() < 1e-5);
    }

    /// Causal attention probabilities `[heads × T × T]` from per-head rows.
    fn probs(rows_per_head: &[Vec<Vec<f32>>]) -> Vec<f32> {
        rows_per_head.iter().flatten().flatten().copied().collect()
    }

    #[test]
    fn sink_scores_and_outlier_keys_of_a_hand_made_attention() {
        // Head 0 is a sink head: queries 1, 2, 3 give 0.9, 0.8, 0.7 to key 0 → mean 0.8.
        // Head 1 attends to the diagonal only → sink score 0.
        let head0 = vec![
            vec![1.0, 0.0, 0.0, 0.0],
            vec![0.9, 0.1, 0.0, 0.0],
            vec![0.8, 0.1, 0.1, 0.0],
            vec![0.7, 0.1, 0.1, 0.1],
        ];
        let head1 = vec![
            vec![1.0, 0.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0, 0.0],
            vec![0.0, 0.0, 1.0, 0.0],
            vec![0.0, 0.0, 0.0, 1.0],
        ];
        let p = probs(&[head0, head1]);
        let s = sink_scores(&p, 2, 4);
        assert!((s[0] - 0.8).abs() < 1e-6 && s[1] == 0.0, "{s:?}");
        assert_eq!(sink_heads(&s), vec![0]);
        // c_k = Σ_q mean_h P: key 0 (3.4 + 1) / 2 = 2.2, key 1 (0.3 + 1) / 2 = 0.65,
        // key 2 (0.2 + 1) / 2 = 0.6, key 3 (0.1 + 1) / 2 = 0.55; they sum to T = 4.
        let c = key_attention(&p, 2, 4);
        for (got, want) in c.iter().zip([2.2, 0.65, 0.6, 0.55]) {
            assert!((got - want).abs() < 1e-6, "{c:?}");
        }
        // Every key reaches 0.1 · T = 0.4 here; on a longer uniform prompt only the sink does.
        assert_eq!(outlier_keys(&c), vec![0, 1, 2, 3]);
        assert_eq!(outlier_keys(&[7.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]), vec![0]);
        // 0.1 · 10 = 1: exactly at the bar counts (≥).
        assert_eq!(outlier_keys(&[5.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]), vec![0, 1]);
        assert!(sink_scores(&[1.0, 1.0], 2, 1).is_empty());

        let a = carrier_attention(4, &c, &s, &[0]);
        assert!((a.share - 0.55).abs() < 1e-6 && (a.mean_sink_score - 0.4).abs() < 1e-6, "{a:?}");
    }

    #[test]
    fn the_chain_finds_the_planted_layer_channel_and_tokens() {
        // Three hidden states (embeddings, after block 0, after block 1) of 4 tokens × 300 channels.
        // Channel 42 appears after block 0 on token 0 and stays; channel 7 appears after block 1
        // on tokens 0 and 2.
        let (tokens, channels) = (4, 300);
        let base = noise(tokens * channels, 3);
        let with = |set: &[(usize, usize, f32)]| {
            let mut h = base.clone();
            for &(t, c, v) in set {
                h[t * channels + c] = v;
            }
            h
        };
        let hs = [with(&[]), with(&[(0, 42, 2500.0)]), with(&[(0, 42, 2400.0), (2, 7, -3000.0), (0, 7, 1200.0)])];
        let hidden: Vec<&[f32]> = hs.iter().map(Vec::as_slice).collect();
        let thresholds: Vec<f32> =
            hs.iter().map(|h| OutlierRule::Massive.threshold(&activation_stats(h, channels))).collect();
        let chain = channel_appearances(&hidden, channels, &thresholds);
        assert_eq!(chain.len(), 2);
        assert_eq!((chain[0].channel, chain[0].first_hidden_state), (42, 1));
        assert_eq!(chain[0].hidden_states, vec![1, 2]);
        assert_eq!(chain[0].carriers, vec![Entry { token: 0, channel: 42, value: 2500.0 }]);
        assert_eq!((chain[1].channel, chain[1].first_hidden_state), (7, 2));
        let carriers: Vec<usize> = chain[1].carriers.iter().map(|e| e.token).collect();
        assert_eq!(carriers, vec![2, 0], "largest first");
    }
}
