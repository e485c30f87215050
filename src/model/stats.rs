//! Order statistics of a tensor's magnitudes, shared by the outlier rules, the interventions and
//! the activation quantizers' percentile clipping. Exact (a sort or a selection), so that the GPU
//! reductions checked against them can match to the bit.

/// The ⌈n/2⌉-th smallest of `values` (for even n the lower of the two middle values), exact.
/// Panics on an empty vector.
pub fn lower_median(mut values: Vec<f32>) -> f32 {
    assert!(!values.is_empty(), "median of nothing");
    let middle = (values.len() - 1) / 2;
    *values.select_nth_unstable_by(middle, f32::total_cmp).1
}

/// The `percentile`-th percentile of |values| with numpy's default linear interpolation: the
/// sorted magnitudes at rank `p/100 · (n − 1)`, interpolated between its two neighbours.
pub fn abs_percentile(values: &[f32], percentile: f64) -> f32 {
    assert!(!values.is_empty(), "percentile of nothing");
    let mut sorted: Vec<f32> = values.iter().map(|x| x.abs()).collect();
    sorted.sort_unstable_by(f32::total_cmp);
    let rank = percentile / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let (a, b) = (sorted[lo] as f64, sorted[hi] as f64);
    (a + (b - a) * (rank - lo as f64)) as f32
}
