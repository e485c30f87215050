//! What a weight view shows of one quantized tensor: value histograms over a shared range, and
//! the grid of values one group can take, decoded from what was stored (a codebook's levels and
//! scales, or a GGUF block's scales), with how many weights fall beyond its ends.

use serde::Serialize;

use crate::formats::blocks::{self, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0, scale_min_k4, F16Le};
use crate::formats::ggml::GgmlType;
use crate::quant::codebook::{Codebook, Sharing};
use crate::quant::{hadamard, Encoding};

/// Equal-width histograms of the weights as loaded and as quantized, over one shared range.
#[derive(Debug, Serialize, PartialEq)]
pub struct ValueHistogram {
    pub min: f32,
    pub max: f32,
    pub loaded: Vec<u32>,
    pub quantized: Option<Vec<u32>>,
}

/// The values one group of a quantized tensor can take (see [`grid_at_largest`]).
#[derive(Debug, Serialize, PartialEq)]
pub struct QuantLevels {
    pub source: &'static str,
    pub basis: &'static str,
    pub shared: String,
    pub row: usize,
    pub start: usize,
    pub end: usize,
    pub column: usize,
    pub value: f32,
    pub values: Vec<f32>,
}

/// Counts of `values` in `bins` equal bins over [min, max] (the max lands in the last bin;
/// anything outside is clamped to the end bins, non-finite values are skipped).
pub fn histogram(values: &[f32], min: f32, max: f32, bins: usize) -> Vec<u32> {
    let mut counts = vec![0u32; bins];
    let span = (max - min) as f64;
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = if span > 0.0 { (((v - min) as f64 / span) * bins as f64).floor() as i64 } else { 0 };
        counts[b.clamp(0, bins as i64 - 1) as usize] += 1;
    }
    counts
}

/// The finite range of one or two sets of values; (0, 0) when there is none.
pub fn finite_range<'a>(sets: impl IntoIterator<Item = &'a [f32]>) -> (f32, f32) {
    let mut range: Option<(f32, f32)> = None;
    for &v in sets.into_iter().flatten().filter(|v| v.is_finite()) {
        range = Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
    }
    range.unwrap_or((0.0, 0.0))
}

/// Index of the largest |v| (the first on ties).
fn argmax_abs(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if v.abs() > values[best].abs() {
            best = i;
        }
    }
    best
}

/// The columns [start, end) of row-sharing `s` that hold column `c`.
fn sharing_span(s: Sharing, cols: usize, c: usize) -> (usize, usize) {
    match s {
        Sharing::Tensor | Sharing::Row => (0, cols),
        Sharing::Group(n) => {
            let n = n.max(1);
            let start = c / n * n;
            (start, (start + n).min(cols))
        }
    }
}

fn describe_sharing(table: Sharing, scale: Sharing) -> String {
    match (table, scale) {
        (Sharing::Group(a), Sharing::Group(b)) => format!("group of {} columns", a.min(b)),
        (Sharing::Group(n), _) | (_, Sharing::Group(n)) => format!("group of {n} columns"),
        (Sharing::Row, _) | (_, Sharing::Row) => "row".into(),
        (Sharing::Tensor, Sharing::Tensor) => "tensor".into(),
    }
}

/// One GGUF (sub-)block's grid: the values `step · q + offset` for the integer codes `q` in
/// `codes`. Every type the schemes produce is affine in its code within a block (K-quants: within
/// a sub-block, whose scale and minimum are 6-bit codes of the super-block's f16 pair).
struct BlockGrid {
    step: f32,
    offset: f32,
    codes: std::ops::RangeInclusive<i32>,
}

impl BlockGrid {
    fn ends(&self) -> GridEnds {
        let (first, last) = (*self.codes.start() as f32, *self.codes.end() as f32);
        GridEnds { low: first, high: last, low_spacing: 1.0, high_spacing: 1.0 }.scaled(self.step, self.offset)
    }

    fn levels(&self) -> Vec<f32> {
        sorted_levels(self.codes.clone().map(|q| self.step * q as f32 + self.offset).collect())
    }
}

/// Elements per sub-block sharing one scale, for the GGUF types whose grid [`block_grid`] reads;
/// None for the others (the float types' "grid" is every representable float).
fn gguf_sub_block(t: GgmlType) -> Option<usize> {
    match t {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => Some(t.block_size()),
        GgmlType::Q4_K => Some(q4_k::SUB_BLOCK_WEIGHTS),
        GgmlType::Q5_K => Some(q5_k::SUB_BLOCK_WEIGHTS),
        GgmlType::Q6_K => Some(q6_k::SUB_BLOCK_WEIGHTS),
        _ => None,
    }
}

/// The grid of sub-block `sub` of the block `b` (its bytes) of type `t`, decoded from the
/// block's scales as `formats::ggml`'s dequantizers apply them.
fn block_grid(t: GgmlType, b: &[u8], sub: usize) -> Option<BlockGrid> {
    let grid = |step, offset, codes| Some(BlockGrid { step, offset, codes });
    // K-quant sub-block j: x = (d * sc_j) * q - (dmin * m_j).
    let k_quant_grid = |d: F16Le, dmin: F16Le, (sc, m): (u8, u8), codes| {
        grid(d.to_f32() * sc as f32, -(dmin.to_f32() * m as f32), codes)
    };
    match t {
        GgmlType::Q8_0 => grid(blocks::view::<q8_0::Block>(b).d.to_f32(), 0.0, -128..=127),
        GgmlType::Q4_0 => grid(blocks::view::<q4_0::Block>(b).d.to_f32(), 0.0, -8..=7),
        GgmlType::Q5_0 => grid(blocks::view::<q5_0::Block>(b).d.to_f32(), 0.0, -16..=15),
        GgmlType::Q4_1 => {
            let block: &q4_1::Block = blocks::view(b);
            grid(block.d.to_f32(), block.m.to_f32(), 0..=15)
        }
        GgmlType::Q5_1 => {
            let block: &q5_1::Block = blocks::view(b);
            grid(block.d.to_f32(), block.m.to_f32(), 0..=31)
        }
        GgmlType::Q4_K => {
            let block: &q4_k::Block = blocks::view(b);
            k_quant_grid(block.d, block.dmin, scale_min_k4(sub, &block.scales), 0..=15)
        }
        GgmlType::Q5_K => {
            let block: &q5_k::Block = blocks::view(b);
            k_quant_grid(block.d, block.dmin, scale_min_k4(sub, &block.scales), 0..=31)
        }
        GgmlType::Q6_K => {
            let block: &q6_k::Block = blocks::view(b);
            grid(block.d.to_f32() * block.scales[sub] as f32, 0.0, -32..=31)
        }
        _ => None,
    }
}

/// Sorted, without repeats.
fn sorted_levels(mut values: Vec<f32>) -> Vec<f32> {
    values.retain(|v| v.is_finite());
    values.sort_by(f32::total_cmp);
    values.dedup();
    values
}

/// The two ends of a grid and the spacing of the grid next to each.
///
/// A weight counts as *clipped* when it lies beyond an end by more than half that spacing: a
/// grid continuing at the same spacing would have rounded it to a level of its own, so its
/// error comes from where the grid stops, not from its resolution. (Merely rounding onto the
/// end level is not clipping: that is what every absmax-scaled block does with its largest
/// weight, up to the rounding of a stored scale.)
#[derive(Debug, Clone, Copy)]
struct GridEnds {
    low: f32,
    high: f32,
    low_spacing: f32,
    high_spacing: f32,
}

impl GridEnds {
    /// The ends of sorted, distinct `levels` (at least one).
    fn of_sorted(levels: &[f32]) -> GridEnds {
        let n = levels.len();
        let spacing = |a: usize, b: usize| if n > 1 { levels[b] - levels[a] } else { 0.0 };
        GridEnds {
            low: levels[0],
            high: levels[n - 1],
            low_spacing: spacing(0, 1),
            high_spacing: spacing(n - 2, n - 1),
        }
    }

    /// The ends once every level `l` becomes `l·scale + offset`.
    fn scaled(self, scale: f32, offset: f32) -> GridEnds {
        let (a, b) = (self.low * scale + offset, self.high * scale + offset);
        let (sa, sb) = (self.low_spacing * scale.abs(), self.high_spacing * scale.abs());
        if scale >= 0.0 {
            GridEnds { low: a, high: b, low_spacing: sa, high_spacing: sb }
        } else {
            GridEnds { low: b, high: a, low_spacing: sb, high_spacing: sa }
        }
    }

    fn clips(&self, w: f32) -> bool {
        w < self.low - self.low_spacing / 2.0 || w > self.high + self.high_spacing / 2.0
    }
}

/// A codebook's grid in the group holding the largest |w| of `basis` (the weights in the basis
/// the codebook quantized), and how many weights lie outside their own group's grid.
fn codebook_grid(cb: &Codebook, basis: &[f32]) -> (QuantLevels, u64) {
    let cols = cb.cols;
    let at = argmax_abs(basis);
    let (r, c) = (at / cols, at % cols);
    let table = cb.table_sharing.index(cols, r, c);
    let scale_index = cb.scale_sharing.index(cols, r, c);
    let offset = |s: usize| cb.offsets.get(s).copied().unwrap_or(0.0);
    let levels = &cb.levels[table * cb.levels_per_table..(table + 1) * cb.levels_per_table];
    let values = sorted_levels(levels.iter().map(|l| l * cb.scales[scale_index] + offset(scale_index)).collect());
    let (t0, t1) = sharing_span(cb.table_sharing, cols, c);
    let (s0, s1) = sharing_span(cb.scale_sharing, cols, c);

    let tables: Vec<GridEnds> =
        cb.levels.chunks_exact(cb.levels_per_table).map(|t| GridEnds::of_sorted(&sorted_levels(t.to_vec()))).collect();
    let mut clipped = 0u64;
    for (i, &w) in basis.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        let s = cb.scale_sharing.index(cols, r, c);
        if tables[cb.table_sharing.index(cols, r, c)].scaled(cb.scales[s], offset(s)).clips(w) {
            clipped += 1;
        }
    }
    let levels = QuantLevels {
        source: "codebook",
        basis: "original",
        shared: describe_sharing(cb.table_sharing, cb.scale_sharing),
        row: r,
        start: t0.max(s0),
        end: t1.min(s1),
        column: c,
        value: basis[at],
        values,
    };
    (levels, clipped)
}

/// A GGUF type's grid in the (sub-)block holding the largest |w| of `basis`, read from that
/// block's scales, and how many weights lie outside their own (sub-)block's grid. None for a
/// type without a grid here (see [`gguf_sub_block`]).
fn gguf_grid(t: GgmlType, bytes: &[u8], cols: usize, basis: &[f32]) -> Result<Option<(QuantLevels, u64)>, String> {
    let Some(sub) = gguf_sub_block(t) else { return Ok(None) };
    let (block, size) = (t.block_size(), t.type_size());
    if !cols.is_multiple_of(block) || bytes.len() != basis.len() / block * size {
        return Err(format!("{} blocks do not tile rows of {cols} ({} bytes)", t.name(), bytes.len()));
    }
    let grid_of = |r: usize, c: usize| {
        let at = (r * (cols / block) + c / block) * size;
        block_grid(t, &bytes[at..at + size], (c % block) / sub)
    };
    let mut clipped = 0u64;
    for (i, w) in basis.chunks_exact(sub).enumerate() {
        let (r, c) = (i * sub / cols, i * sub % cols);
        let Some(grid) = grid_of(r, c) else { return Ok(None) };
        let ends = grid.ends();
        clipped += w.iter().filter(|&&x| ends.clips(x)).count() as u64;
    }
    let at = argmax_abs(basis);
    let (r, c) = (at / cols, at % cols);
    let Some(grid) = grid_of(r, c) else { return Ok(None) };
    let start = c / sub * sub;
    let shared =
        if sub == block { format!("block of {block}") } else { format!("sub-block of {sub} (super-block of {block})") };
    let levels = QuantLevels {
        source: "gguf-block",
        basis: "original",
        shared,
        row: r,
        start,
        end: start + sub,
        column: c,
        value: basis[at],
        values: grid.levels(),
    };
    Ok(Some((levels, clipped)))
}

/// The grid of `encoding` around the tensor's largest |w| and the count of clipped weights,
/// in the basis the scheme quantized (Hadamard-rotated rows for a rotated scheme). None for a
/// float encoding.
pub fn grid_at_largest(encoding: &Encoding, cols: usize, original: &[f32]) -> Result<Option<(QuantLevels, u64)>, String> {
    match encoding {
        Encoding::Codebook(cb) => Ok(Some(codebook_grid(cb, original))),
        Encoding::Ggml { dtype, bytes } => gguf_grid(*dtype, bytes, cols, original),
        Encoding::Rotated { block, inner } => {
            let rotated = hadamard::rotate_rows(*block, cols, original);
            Ok(grid_at_largest(inner, cols, &rotated)?.map(|(mut levels, clipped)| {
                levels.basis = "rotated";
                (levels, clipped)
            }))
        }
    }
}
